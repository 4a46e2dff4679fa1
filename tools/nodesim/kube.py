"""Thin raw-JSON helpers around the repository's one raw client (tools/kubeclient.py) used by the simulator.

The generated API methods are used with ``_preload_content=False`` so that pods stay plain dicts
(deserializing 1,000 pods into models on every watch event would dominate the CPU time), and with
an explicit ``_content_type``: the client's default content type for PATCH is JSON patch.
"""

import json
import logging

from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

from kubeclient import SMP, read_json as _read

LOG = logging.getLogger("nodesim")


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


#: the simulator's connection pool: its writer threads (default 8) and the watch share it
POOL_SIZE = 16


class Kube:
    """The simulator's API calls on a ``kubeclient.KubeClient`` (``KubeClient(kubeconfig, context,
    pool_size=POOL_SIZE)``)."""

    def __init__(self, kube):
        self.kube = kube
        self.core = kube.core

    # pods
    def list_pods(self):
        return self.kube.list_pods()

    def watch_pods(self, resource_version, timeout_seconds=300):
        """Yield (type, object) for pod events since resource_version; raises Gone on 410."""
        resp = self.core.list_pod_for_all_namespaces(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            _request_timeout=(10, timeout_seconds + 30),
        )
        try:
            for line in iter_resp_lines(resp):
                if not line:
                    continue
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone(obj.get("message"))
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                yield kind, obj
        finally:
            resp.close()
            resp.release_conn()

    def patch_pod_status(self, namespace, name, body):
        _read(self.core.patch_namespaced_pod_status(name, namespace, body, _content_type=SMP, _preload_content=False))

    def bind_pod(self, namespace, name, uid, node):
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        _read(self.core.create_namespaced_pod_binding(name, namespace, body, _preload_content=False))

    def delete_pod_now(self, namespace, name, uid):
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        _read(self.core.delete_namespaced_pod(name, namespace, body=body, grace_period_seconds=0, _preload_content=False))

    def create_event(self, namespace, body):
        _read(self.core.create_namespaced_event(namespace, body, _preload_content=False))

    def server_version(self):
        """The API server's gitVersion (a simulated kubelet reports the control plane's version)."""
        try:
            return self.kube.version_info.git_version
        except Exception:  # pylint: disable=broad-except  # best effort: only the node's reported version
            return "v0.0.0"

    # nodes
    def list_nodes(self, label_selector):
        data = _read(self.core.list_node(label_selector=label_selector, _preload_content=False))
        return data.get("items") or []

    def create_node(self, body):
        return _read(self.core.create_node(body, _preload_content=False))

    def patch_node(self, name, body):
        return _read(self.core.patch_node(name, body, _content_type=SMP, _preload_content=False))

    def patch_node_status(self, name, body):
        return _read(self.core.patch_node_status(name, body, _content_type=SMP, _preload_content=False))

    def delete_node(self, name):
        return _read(self.core.delete_node(name, _preload_content=False))
