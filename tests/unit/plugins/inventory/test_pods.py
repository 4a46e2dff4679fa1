"""Unit tests of the meshops.sidecarset.pods inventory plugin's pure helpers."""

from ansible_collections.meshops.sidecarset.plugins.inventory.pods import (
    InventoryModule,
    cluster_name,
    owner_of,
    safe_group,
    selected_namespaces,
)


def test_owner_resolves_replicaset_to_deployment():
    pod = {"metadata": {"labels": {"pod-template-hash": "5d9c7b"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9c7b", "controller": True}]}}
    assert owner_of(pod) == {"kind": "Deployment", "name": "web"}


def test_owner_keeps_other_kinds_and_bare_pods():
    pod = {"metadata": {"ownerReferences": [{"kind": "StatefulSet", "name": "db", "controller": True}]}}
    assert owner_of(pod) == {"kind": "StatefulSet", "name": "db"}
    rs = {"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "plain", "controller": True}]}}
    assert owner_of(rs) == {"kind": "ReplicaSet", "name": "plain"}
    assert owner_of({"metadata": {}}) == {}


def test_namespace_selector_matched_locally_with_the_name_label():
    namespaces = [{"metadata": {"name": "shop", "labels": {"env": "prod"}}}, {"metadata": {"name": "dev"}}]
    v1alpha1 = {"spec": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dev"}}}}
    assert selected_namespaces(namespaces, v1alpha1) == ["dev"]
    assert selected_namespaces(namespaces, {"spec": {"namespaceSelector": {"matchLabels": {"env": "prod"}}}}) == ["shop"]
    assert selected_namespaces(namespaces, {"spec": {}}) == ["dev", "shop"]


def test_group_and_cluster_names():
    assert safe_group("namespace_shop-eu.1") == "namespace_shop_eu_1"
    assert cluster_name({}, 0, 1) == "default"
    assert cluster_name({}, 1, 2) == "cluster-1"
    assert cluster_name({"name": "prod"}, 0, 2) == "prod"


def test_verify_file_wants_pods_suffix(tmp_path):
    plugin = InventoryModule()
    good = tmp_path / "mesh.pods.yml"
    good.write_text("plugin: meshops.sidecarset.pods\n")
    bad = tmp_path / "mesh.yml"
    bad.write_text("plugin: meshops.sidecarset.pods\n")
    assert plugin.verify_file(str(good))
    assert not plugin.verify_file(str(bad))
