"""Unit tests of the meshops.sidecarset.pods inventory plugin: pure helpers, and its failures with a fake client."""

import os

import pytest
from ansible.errors import AnsibleParserError

from ansible_collections.meshops.sidecarset.plugins.inventory.pods import (
    InventoryModule,
    cluster_name,
    fetch_cluster,
    owner_of,
    safe_group,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import KubeError
from ansible_collections.meshops.sidecarset.tests.unit.plugins.module_utils import podfactory as pf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


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


def test_namespace_selector_and_the_namespaces_option():
    """One LIST of every namespace's pods without a namespaceSelector; with one (or the namespaces option), one per
    selected namespace; the namespaces option only narrows what the SidecarSet selects."""
    client = FakeClient(namespaces=[{"metadata": {"name": "shop", "labels": {"env": "prod"}}}, {"metadata": {"name": "dev"}}])

    def selecting(labels):
        result = pf.sidecarset()
        result["spec"]["namespaceSelector"] = {"matchLabels": labels}
        return result

    by_name, prod = selecting({"kubernetes.io/metadata.name": "dev"}), selecting({"env": "prod"})
    for sidecarset, within, listed in ((pf.sidecarset(), None, [None]), (by_name, None, ["dev"]), (prod, None, ["shop"]),
                                       (pf.sidecarset(), ["dev"], ["dev"]), (prod, ["dev"], [])):
        client.listed = []
        fetch_cluster(client, sidecarset, within)
        assert client.listed == listed, (sidecarset["spec"], within)


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


# --- failures: only a 403 on the nodes is tolerated; everything else reaches the user with its cause -------------


class FakeClient(object):
    """Namespaces, pods and nodes from memory; ``nodes_error`` is raised when the nodes are read."""

    def __init__(self, nodes_error=None, pods_error=None, namespaces=None):
        self.nodes_error = nodes_error
        self.pods_error = pods_error
        self.namespaces = namespaces or [{"metadata": {"name": "default"}}]
        self.listed = []

    def list_namespaces(self):
        return self.namespaces

    def request(self, method, path, verb=None, **kwargs):
        if path == "/api/v1/nodes":
            if self.nodes_error:
                raise self.nodes_error
            return {"items": [{"metadata": {"name": "node-1", "labels": {"topology.kubernetes.io/zone": "eu-1a"}}}]}
        raise AssertionError(path)

    def list_pods(self, namespace, selector):
        self.listed.append(namespace)
        if self.pods_error:
            raise self.pods_error
        return [pf.pod()], "1"


def test_nodes_readable_gives_zones():
    records = fetch_cluster(FakeClient(), pf.sidecarset())
    assert [r["pod_zone"] for r in records] == ["eu-1a"]


def test_nodes_forbidden_only_drops_the_zones():
    records = fetch_cluster(FakeClient(nodes_error=KubeError(403, "nodes is forbidden")), pf.sidecarset())
    assert [r["pod_name"] for r in records] == ["pod-0"] and "pod_zone" not in records[0]


@pytest.mark.parametrize("error", [KubeError(500, "etcdserver: request timed out"), KubeError(0, "cannot reach ..."), KeyError("labels")])
def test_other_node_errors_are_not_swallowed(error):
    """Before: any exception reading the nodes silently dropped the zone groups."""
    with pytest.raises(type(error)):
        fetch_cluster(FakeClient(nodes_error=error), pf.sidecarset())


def inventory_plugin(tmp_path, client):
    plugin = InventoryModule()
    options = {"sidecarset": os.path.join(ROOT, "examples", "sidecarsets", "mosn.yaml"), "clusters": [{"name": "prod"}], "namespaces": None}
    plugin.get_option = options.get
    plugin._client = lambda cluster: client  # pylint: disable=protected-access
    return plugin, str(tmp_path / "mesh.pods.yml")


def test_api_error_is_a_parser_error_with_the_cause(tmp_path):
    error = KubeError(0, "cannot reach the Kubernetes API at https://127.0.0.1:1: connection refused")
    plugin, path = inventory_plugin(tmp_path, FakeClient(pods_error=error))
    with pytest.raises(AnsibleParserError) as info:
        plugin._fetch(path)  # pylint: disable=protected-access
    assert str(info.value) == ("cluster prod: cannot read the pods of SidecarSet mosn: "
                               "cannot reach the Kubernetes API at https://127.0.0.1:1: connection refused")
    assert info.value.__cause__ is error


def test_a_bug_is_a_parser_error_that_keeps_the_cause(tmp_path):
    error = TypeError("'NoneType' object is not subscriptable")
    plugin, path = inventory_plugin(tmp_path, FakeClient(pods_error=error))
    with pytest.raises(AnsibleParserError, match="cluster prod: unexpected TypeError reading the pods of SidecarSet mosn") as info:
        plugin._fetch(path)  # pylint: disable=protected-access
    assert info.value.__cause__ is error and info.value.__cause__.__traceback__ is not None
