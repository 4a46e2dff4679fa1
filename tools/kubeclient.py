"""One raw Kubernetes client for the repository's tools, tests and examples.

The collection itself talks to Kubernetes through ``plugins/module_utils/kube.py`` (kubernetes.core's
connection options, retries, request counting). Everything else in this repository that needs a plain client
from a kubeconfig file builds it here: the node simulator (``tools/nodesim``), the Kruise installer
(``tools/kruise/install.py``), the benchmarks (``tools/bench``), the integration and conformance fixtures
(``tests/integration/conftest.py``, ``tests/conformance/kruiseref.py``) and the demos (``examples/*/demo.py``)::

    from kubeclient import KubeClient
    kube = KubeClient("/path/kubeconfig", pool_size=16, user_agent="my-tool", quiet_tls=True)
    kube.core.list_namespace()              # the typed APIs: core, apps, batch, rbac, custom, ...
    subprocess.run([...], env=dict(os.environ, **kube.env))   # KUBECONFIG / K8S_AUTH_KUBECONFIG
    kube.pods("ns", "app=x")                # live pods as plain dicts, from the raw JSON

It is importable as ``kubeclient`` with the repository's ``tools/`` on ``sys.path``: the root ``conftest.py``
puts it there for pytest (and for the scripts that import it), ``tools/cluster/up.sh`` runs the node simulator
with ``PYTHONPATH=tools``, and the scripts run by path insert it themselves.

Besides the client: the repeated helpers of those callers, each in one place: ``wait_for`` (a bounded poll that
names what it waited for and the last error), ``pod_ready`` / ``wait_pods_ready``, namespace create / delete, the
namespace's default ServiceAccount, and ``read_json`` for responses fetched with ``_preload_content=False``.
"""

import argparse
import functools
import json
import os
import re
import sys
import time

from kubernetes import client, config
from kubernetes.client.rest import ApiException

#: ``kubectl``'s content type for a strategic merge patch (the client's default for PATCH is JSON patch).
SMP = "application/strategic-merge-patch+json"


class WaitTimeout(Exception):
    """``wait_for`` gave up: the message says what was waited for, how long, and the last error seen."""


def quiet_insecure_warnings():
    """Silence urllib3's InsecureRequestWarning (process-wide): the local control plane (tools/cluster/up.sh) and
    the Kruise reference cluster serve a self-signed certificate on 127.0.0.1, and their kubeconfigs say
    ``insecure-skip-tls-verify``; without this every request prints a warning."""
    import urllib3  # pylint: disable=import-outside-toplevel

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def read_json(resp):
    """The JSON body of a response fetched with ``_preload_content=False``, the connection released."""
    try:
        return json.loads(resp.data)
    finally:
        resp.release_conn()


def wait_for(predicate, timeout, interval=0.5, what="condition", retry_on=(Exception,)):
    """Call ``predicate()`` every ``interval`` seconds until it returns a truthy value and return that value.

    An exception of ``retry_on`` counts as "not yet" (its last one is named in the failure); after ``timeout``
    seconds ``WaitTimeout`` is raised: ``timed out after 30.0s waiting for <what> (last error: ...)``.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except retry_on as exc:  # pylint: disable=broad-except
            last = exc
        if time.monotonic() > deadline:
            raise WaitTimeout("timed out after %.1fs waiting for %s%s" % (
                timeout, what, " (last error: %r)" % (last,) if last else ""))
        time.sleep(interval)


def pod_ready(pod):
    """A pod (plain dict) is Running and every container of its spec reports ready."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return (status.get("phase") == "Running" and len(statuses) == len(pod["spec"]["containers"])
            and all(s.get("ready") for s in statuses))


class KubeClient:
    """A ``kubernetes`` ApiClient from a kubeconfig file, its typed APIs and the environment for subprocesses.

    ``kubeconfig``: the file (None: the client's default, ``$KUBECONFIG`` or ``~/.kube/config``);
    ``context``: a context of it (None: its current-context); ``pool_size``: urllib3's connection pool size (None:
    the client's default, 4); ``user_agent``: the User-Agent of every request (None: the client's
    ``OpenAPI-Generator/...``); ``quiet_tls``: call ``quiet_insecure_warnings()`` first.
    """

    def __init__(self, kubeconfig=None, context=None, pool_size=None, user_agent=None, quiet_tls=False):
        if quiet_tls:
            quiet_insecure_warnings()
        self.kubeconfig = str(kubeconfig) if kubeconfig else None
        cfg = client.Configuration()
        try:
            config.load_kube_config(config_file=self.kubeconfig, context=context, client_configuration=cfg)
        except config.ConfigException as exc:   # its message does not name the file
            raise config.ConfigException("%s: %s" % (self.kubeconfig or "the default kubeconfig", exc)) from exc
        if pool_size:
            cfg.connection_pool_maxsize = pool_size
        self.configuration = cfg
        self.host = cfg.host
        self.api_client = client.ApiClient(cfg)
        if user_agent:
            self.api_client.user_agent = user_agent

    # -------------------------------------------------------------------------------- typed APIs (made on first use)
    @functools.cached_property
    def core(self):
        return client.CoreV1Api(self.api_client)

    @functools.cached_property
    def apps(self):
        return client.AppsV1Api(self.api_client)

    @functools.cached_property
    def batch(self):
        return client.BatchV1Api(self.api_client)

    @functools.cached_property
    def rbac(self):
        return client.RbacAuthorizationV1Api(self.api_client)

    @functools.cached_property
    def custom(self):
        return client.CustomObjectsApi(self.api_client)

    @functools.cached_property
    def apiextensions(self):
        return client.ApiextensionsV1Api(self.api_client)

    @functools.cached_property
    def admissionregistration(self):
        return client.AdmissionregistrationV1Api(self.api_client)

    @functools.cached_property
    def version_info(self):
        """The API server's ``version.Info`` (``git_version``, ``major``, ``minor``), asked once."""
        return client.VersionApi(self.api_client).get_code()

    def server_minor(self):
        """The API server's minor version as an int (``"24+"`` -> 24)."""
        return int(re.sub(r"\D.*$", "", self.version_info.minor) or 0)

    # -------------------------------------------------------------------------------- plain data
    @property
    def env(self):
        """``KUBECONFIG`` and ``K8S_AUTH_KUBECONFIG`` (kubernetes.core's, and so the collection's) for a
        subprocess: the kubeconfig file as an absolute path."""
        if not self.kubeconfig:
            raise ValueError("KubeClient.env: the client was made from the default kubeconfig; pass kubeconfig=FILE")
        path = os.path.abspath(self.kubeconfig)
        return {"KUBECONFIG": path, "K8S_AUTH_KUBECONFIG": path}

    def plain(self, obj):
        """A client model (or a list/dict of them) as plain JSON-able data: ``sanitize_for_serialization``."""
        return self.api_client.sanitize_for_serialization(obj)

    def list_pods(self, namespace=None, selector=None, live=False):
        """``(items, resourceVersion)`` of a pod list (every namespace when ``namespace`` is None), the items as
        plain dicts straight from the raw JSON (``_preload_content=False``: deserializing 1,000 pods into models
        costs more than the request). Pods being deleted are included unless ``live``."""
        kwargs = {"_preload_content": False}
        if selector:
            kwargs["label_selector"] = selector
        if namespace is None:
            data = read_json(self.core.list_pod_for_all_namespaces(**kwargs))
        else:
            data = read_json(self.core.list_namespaced_pod(namespace, **kwargs))
        items = data.get("items") or []
        if live:
            items = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        return items, data["metadata"]["resourceVersion"]

    def pods(self, namespace=None, selector=None):
        """The live pods (no ``deletionTimestamp``) as plain dicts from the raw JSON (see ``list_pods``)."""
        return self.list_pods(namespace, selector, live=True)[0]

    def wait_pods_ready(self, namespace, count, selector=None, timeout=60, interval=0.5):
        """Until exactly ``count`` live pods of ``namespace`` (and ``selector``) are ``pod_ready``; return them.
        ``WaitTimeout`` names each pod's phase and ready containers."""
        seen = []

        def ready():
            seen[:] = self.pods(namespace, selector)
            return seen[:] if len(seen) == count and all(pod_ready(p) for p in seen) else None

        try:
            return wait_for(ready, timeout, interval, "%d ready pod(s) in %s" % (count, namespace), retry_on=(ApiException,))
        except WaitTimeout as exc:
            raise WaitTimeout("%s; %d pod(s): %s" % (exc, len(seen), [
                (p["metadata"]["name"], (p.get("status") or {}).get("phase"),
                 "%d/%d ready" % (sum(1 for s in (p.get("status") or {}).get("containerStatuses") or () if s.get("ready")),
                                  len(p["spec"]["containers"]))) for p in seen])) from None

    def ready_nodes(self, selector=None):
        """The names of the nodes (of the label ``selector``) whose Ready condition is True, in the API's order."""
        return [n.metadata.name for n in self.core.list_node(label_selector=selector or "").items
                if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or ())]

    # -------------------------------------------------------------------------------- namespaces
    def create_namespace(self, name, labels=None, exist_ok=False):
        """Create namespace ``name`` (with ``labels``); with ``exist_ok`` an existing one (409) is fine."""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        if labels:
            body["metadata"]["labels"] = dict(labels)
        try:
            self.core.create_namespace(body)
        except ApiException as exc:
            if not (exist_ok and exc.status == 409):
                raise
        return name

    def delete_namespace(self, name, wait=0):
        """Delete namespace ``name`` (a missing one is fine); with ``wait`` seconds, until it is gone. Returns
        whether there was one to delete."""
        try:
            self.core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return False
        if wait:
            wait_for(lambda: not self._exists(self.core.read_namespace, name), wait, 0.5,
                     "namespace %s to be deleted" % name, retry_on=(ApiException,))
        return True

    def wait_default_service_account(self, namespace, timeout=60):
        """Until the namespace's ``default`` ServiceAccount exists (pods are refused before): up to Kubernetes 1.23
        also its token Secret, which the tokens controller creates (later versions create none). Returns it."""
        def ready():
            sa = self.core.read_namespaced_service_account("default", namespace)
            return sa if (sa.secrets or self.server_minor() >= 24) else None

        return wait_for(ready, timeout, 0.1, "ServiceAccount %s/default" % namespace, retry_on=(ApiException,))

    @staticmethod
    def _exists(read, *args):
        try:
            read(*args)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def __repr__(self):
        return "%s(%s, kubeconfig=%s)" % (type(self).__name__, self.host, self.kubeconfig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kubeclient", description="the repository's raw Kubernetes client, for scripts")
    parser.add_argument("--kubeconfig", required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    nodes = sub.add_parser("ready-nodes", help="print the Ready nodes of a label selector, one a line")
    nodes.add_argument("selector", nargs="?", default="")
    args = parser.parse_args(argv)
    kube = KubeClient(args.kubeconfig, quiet_tls=True)
    for name in kube.ready_nodes(args.selector):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
