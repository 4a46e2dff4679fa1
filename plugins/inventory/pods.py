# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: pods
short_description: The pods a SidecarSet selects, one inventory host per pod, grouped for sidecar rollouts
version_added: 0.1.0
author:
  - meshops.sidecarset contributors (@meshops)
description:
  - Reads the pods an OpenKruise SidecarSet selects (its C(selector), and its C(namespaceSelector) or
    v1alpha1 C(namespace)) in one or more clusters and makes each pod a host named
    C(<cluster>/<namespace>/<pod>).
  - "Host variables: C(pod_name), C(pod_namespace), C(pod_node), C(pod_zone) (the node's
    C(topology.kubernetes.io/zone) label, when nodes can be read), C(pod_owner) (C(kind), C(name); a
    ReplicaSet of a Deployment is resolved to the Deployment), C(pod_labels), C(sidecar_images),
    C(sidecar_working), C(sidecar_versions), C(sidecar_phase), C(sidecar_reason), C(sidecar_updated),
    C(sidecar_ready), C(sidecarset_name), C(k8s_cluster) and C(k8s_connection) (the cluster's connection
    settings, in the form the rollout role's C(rollout_clusters) takes)."
  - "Groups: C(cluster_<name>), C(namespace_<ns>), C(node_<node>), C(zone_<zone>), C(owner_<kind>_<name>),
    and by upgrade phase C(needs_upgrade) (idle), C(updated) (done), C(upgrading) (in flight), C(failed) and
    C(not_upgradable). Characters other than letters, digits and C(_) become C(_)."
  - "Every pod host has C(ansible_connection=local) and C(ansible_python_interpreter={{ ansible_playbook_python }}),
    since the work is API calls from the controller (or the execution environment)."
  - All values read from the cluster are marked unsafe (never templated).
  - The configuration file name must end with C(.pods.yml) or C(.pods.yaml).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin.
    required: true
    choices: [meshops.sidecarset.pods]
    type: str
  sidecarset:
    description:
      - The SidecarSet, as a path to a YAML file (relative paths are relative to the inventory file) or as a dict.
    required: true
    type: raw
  clusters:
    description:
      - Clusters to read, each a dict of kubernetes.core connection settings (C(kubeconfig), C(context), C(host),
        C(api_key), C(validate_certs), C(ca_cert), C(client_cert), C(client_key), C(proxy), C(username),
        C(password)) plus C(name) (the cluster's name in host names and groups, default C(default) or
        C(cluster-<n>)).
      - By default one cluster from the environment (C(K8S_AUTH_*) variables, as AWX's Kubernetes credential
        sets them, or C(K8S_AUTH_KUBECONFIG)/C(~/.kube/config)).
    type: list
    elements: dict
    default: []
  namespaces:
    description: Only these namespaces (among those the SidecarSet selects).
    type: list
    elements: str
    default: []
requirements:
  - python >= 3.11
  - kubernetes >= 24.2.0
"""

EXAMPLES = r"""
# mesh.pods.yml
plugin: meshops.sidecarset.pods
sidecarset: sidecarsets/mosn.yaml
clusters:
  - name: prod-eu
    kubeconfig: ~/.kube/prod-eu
  - name: prod-us
    context: prod-us
namespaces: [shop, payments]
keyed_groups:
  - key: pod_labels.app
    prefix: app
compose:
  mesh_version: sidecar_versions
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /tmp/meshops-inventory-cache

# ansible-inventory -i mesh.pods.yml --graph
"""

import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

try:
    from ansible.utils.unsafe_proxy import make_unsafe
except ImportError:  # pragma: no cover - very old cores
    from ansible.utils.unsafe_proxy import wrap_var as make_unsafe

try:  # ansible-core >= 2.19: inventory values are not templated unless trusted
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - older cores template inventory strings
    def trust_as_template(value):
        return value

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
except ImportError:  # pragma: no cover - kubernetes.core is a dependency of the collection
    class CoreException(Exception):
        """Stand-in when kubernetes.core cannot be imported."""

from ansible_collections.meshops.sidecarset.plugins.module_utils.connection import AUTH_KEYS, connection_options
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import MeshopsError, SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import KubeError
from ansible_collections.meshops.sidecarset.plugins.module_utils.podlist import list_sidecarset_pods
from ansible_collections.meshops.sidecarset.plugins.module_utils.assessment import (
    PHASE_DONE,
    PHASE_FAILED,
    PHASE_IDLE,
    PHASE_MIGRATING,
    PHASE_NOT_UPGRADABLE,
    PHASE_RESETTING,
    PHASE_UPGRADING,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import load_sidecarsets, sidecarset_name
from ansible_collections.meshops.sidecarset.plugins.module_utils.status import pod_report
from ansible_collections.meshops.sidecarset.plugins.module_utils.status import workload_of as owner_of  # noqa: F401 (tests import it)

ZONE_LABEL = "topology.kubernetes.io/zone"
PHASE_GROUPS = {
    PHASE_IDLE: "needs_upgrade",
    PHASE_DONE: "updated",
    PHASE_NOT_UPGRADABLE: "not_upgradable",
    PHASE_FAILED: "failed",
    PHASE_UPGRADING: "upgrading",
    PHASE_MIGRATING: "upgrading",
    PHASE_RESETTING: "upgrading",
}


def safe_group(text):
    """A valid group name: letters, digits and ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", str(text))


def cluster_name(cluster, index, count):
    return str(cluster.get("name") or ("default" if count == 1 else "cluster-%d" % index))


def fetch_cluster(client, sidecarset, namespaces=None):
    """Read one cluster: the pods the SidecarSet selects and the zones of their nodes. Returns host records."""
    pods = list_sidecarset_pods(client, sidecarset, within=namespaces)
    zones = {}
    try:
        for node in client.request("GET", "/api/v1/nodes", verb="list").get("items") or []:
            meta = node.get("metadata") or {}
            zone = (meta.get("labels") or {}).get(ZONE_LABEL)
            if zone:
                zones[meta.get("name")] = zone
    except KubeError as exc:
        if exc.status != 403:
            raise
        zones = {}  # no permission to read nodes (403): zones are omitted
    records = []
    for pod in pods:
        report = pod_report(pod, sidecarset)
        meta = pod.get("metadata") or {}
        record = {
            "pod_name": report["name"],
            "pod_namespace": report["namespace"],
            "pod_node": report["node"],
            "pod_owner": owner_of(pod),
            "pod_labels": dict(meta.get("labels") or {}),
            "pod_uid": meta.get("uid"),
            "sidecar_images": report["images"],
            "sidecar_working": report["working"],
            "sidecar_versions": report["versions"],
            "sidecar_phase": report["phase"],
            "sidecar_reason": report["reason"],
            "sidecar_updated": report["updated"],
            "sidecar_ready": report["ready"],
        }
        if report["node"] in zones:
            record["pod_zone"] = zones[report["node"]]
        records.append(record)
    records.sort(key=lambda r: (r["pod_namespace"], r["pod_name"]))
    return records


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """meshops.sidecarset.pods: one host per pod a SidecarSet selects."""

    NAME = "meshops.sidecarset.pods"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith((".pods.yml", ".pods.yaml"))

    def _client(self, cluster):
        # pylint: disable=import-outside-toplevel
        from ansible_collections.meshops.sidecarset.plugins.module_utils.client import client_from_options

        return client_from_options(**connection_options(cluster))

    def _fetch(self, path):
        import os  # pylint: disable=import-outside-toplevel

        try:
            sidecarsets = load_sidecarsets([self.get_option("sidecarset")], base_dir=os.path.dirname(os.path.abspath(path)))
        except SidecarSetError as exc:
            raise AnsibleParserError("%s: invalid sidecarset: %s" % (path, exc))
        if len(sidecarsets) != 1:
            raise AnsibleParserError("%s: sidecarset must hold exactly one SidecarSet, found %d" % (path, len(sidecarsets)))
        sidecarset = sidecarsets[0]
        clusters = self.get_option("clusters") or [{}]
        data = {"sidecarset": sidecarset_name(sidecarset), "clusters": []}
        for index, cluster in enumerate(clusters):
            name = cluster_name(cluster, index, len(clusters))
            try:
                records = fetch_cluster(self._client(cluster), sidecarset, self.get_option("namespaces") or None)
            except (KubeError, CoreException, MeshopsError) as exc:
                # ansible-core appends the cause's message: "...: cannot reach the Kubernetes API at ...: connection refused"
                raise AnsibleParserError("cluster %s: cannot read the pods of SidecarSet %s" % (name, data["sidecarset"])) from exc
            except Exception as exc:  # pylint: disable=broad-except
                # a bug: the cause and its traceback stay attached (ANSIBLE_DISPLAY_TRACEBACK=error shows them)
                raise AnsibleParserError("cluster %s: unexpected %s reading the pods of SidecarSet %s (a bug of meshops.sidecarset)"
                                         % (name, type(exc).__name__, data["sidecarset"])) from exc
            connection = {key: cluster[key] for key in AUTH_KEYS if key in cluster}
            connection["name"] = name
            data["clusters"].append({"name": name, "connection": connection, "pods": records})
        return data

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache")
        data = None
        update_cache = False
        if use_cache and cache:
            try:
                data = self._cache[cache_key]
            except KeyError:
                update_cache = True
        elif use_cache:
            update_cache = True
        if data is None:
            data = self._fetch(path)
        if update_cache:
            self._cache[cache_key] = data
        self._populate(data)

    def _group(self, name, parent=None):
        group = self.inventory.add_group(safe_group(name))
        if parent:
            self.inventory.add_child(parent, group)
        return group

    def _populate(self, data):
        strict = self.get_option("strict")
        for group in sorted(set(PHASE_GROUPS.values())):
            self._group(group)
        for cluster in data["clusters"]:
            cluster_group = self._group("cluster_" + cluster["name"])
            for record in cluster["pods"]:
                host = "%s/%s/%s" % (cluster["name"], record["pod_namespace"], record["pod_name"])
                self.inventory.add_host(host, group=cluster_group)
                variables = dict(record, sidecarset_name=data["sidecarset"], k8s_cluster=cluster["name"],
                                 k8s_connection=cluster["connection"])
                for key, value in variables.items():
                    self.inventory.set_variable(host, key, make_unsafe(value))
                self.inventory.set_variable(host, "ansible_connection", "local")
                self.inventory.set_variable(host, "ansible_python_interpreter", trust_as_template("{{ ansible_playbook_python }}"))
                self.inventory.add_host(host, group=self._group("namespace_" + record["pod_namespace"]))
                if record.get("pod_node"):
                    self.inventory.add_host(host, group=self._group("node_" + record["pod_node"]))
                if record.get("pod_zone"):
                    self.inventory.add_host(host, group=self._group("zone_" + record["pod_zone"]))
                owner = record.get("pod_owner") or {}
                if owner.get("name"):
                    self.inventory.add_host(host, group=self._group("owner_%s_%s" % (owner["kind"].lower(), owner["name"])))
                phase_group = PHASE_GROUPS.get(record["sidecar_phase"])
                if phase_group:
                    self.inventory.add_host(host, group=phase_group)
                hostvars = self.inventory.get_host(host).get_vars()
                self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
                self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
                self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)
