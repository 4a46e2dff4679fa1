"""Fixtures for the integration tests: a real kube-apiserver (never a mock).

Which cluster:
  * ``KUBECONFIG`` set by the caller (e.g. a kind cluster): used as is; nothing is started or
    stopped, and tests that need the node simulator's deterministic behaviour are skipped
    (``kube.nodesim`` is False unless nodes labelled ``nodesim.meshops.io/managed=true`` exist).
    ``MESHOPS_LOCAL_CLUSTER=1`` ignores ``KUBECONFIG`` and uses the local control plane anyway.
  * otherwise the local control plane: ``tools/cluster/up.sh`` (what ``make cluster-up`` runs):
    etcd + kube-apiserver v1.20.2 + kube-controller-manager + tools/nodesim, admin kubeconfig in
    ``.cluster/kubeconfig``. up.sh is idempotent, so a running cluster is reused. The fixture never
    stops it, whether it started it or not: the next run reuses it (about 15 s saved), and
    ``make cluster-down`` stops it. On a machine without apt, up.sh exits 2 and the integration
    tests are skipped with its message (how to point them at another cluster).

Fixtures:
  * ``kube`` (session): a ``KubeEnv`` with ``kubeconfig``, ``api_client``, ``core`` (CoreV1Api),
    ``apps`` (AppsV1Api), ``batch``, ``rbac``, ``local`` (our control plane), ``nodesim``,
    ``env`` (KUBECONFIG / K8S_AUTH_KUBECONFIG for subprocesses) and ``wait_for()``.
  * ``namespace`` (function): a fresh namespace (its ``default`` ServiceAccount ready), deleted after.
  * ``least_privilege`` (session): a ``Principal`` for a ServiceAccount bound by a
    ClusterRoleBinding to exactly the ClusterRole of docs/rbac/collection-role.yaml: ``token``,
    ``kubeconfig`` (file), ``api_client``, ``core``, ``apps``, ``env`` (K8S_AUTH_* variables).
  * ``least_privilege_ns`` (function): the same, bound by a RoleBinding to the namespaced Role of
    that file inside ``namespace`` only.

The cluster lifecycle tests (test_cluster_lifecycle.py) are moved to the end of the run, so that
their down/up (which empties the cluster) cannot disturb other tests.
"""

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

import kubeclient  # tools/kubeclient.py: the repository's one raw client (the root conftest.py puts tools/ on sys.path)

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_DIR = Path(os.environ.get("MESHOPS_CLUSTER_DIR", ROOT / ".cluster"))
LOCAL_KUBECONFIG = CLUSTER_DIR / "kubeconfig"
RBAC_FILE = ROOT / "docs" / "rbac" / "collection-role.yaml"
COLLECTION_ROLE = "meshops-sidecarset-collection"
NODESIM_LABEL = "nodesim.meshops.io/managed"
HERE = Path(__file__).resolve().parent

# Captured at import time, before anything in the session could set it.
USER_KUBECONFIG = None if os.environ.get("MESHOPS_LOCAL_CLUSTER") == "1" else os.environ.get("KUBECONFIG")

kubeclient.quiet_insecure_warnings()


def user_supplied_cluster():
    """True when the caller pointed the tests at their own cluster with KUBECONFIG."""
    return bool(USER_KUBECONFIG)


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: needs a Kubernetes API server (local control plane or $KUBECONFIG)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "cluster_lifecycle: stops and restarts the local control plane; runs last")
    # the local apiserver has a self-signed serving certificate (loopback only)
    config.addinivalue_line("filterwarnings", "ignore::urllib3.exceptions.InsecureRequestWarning")


def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
    first, last = [], []
    for item in items:
        path = Path(str(getattr(item, "path", None) or item.fspath)).resolve()
        if HERE in path.parents:
            item.add_marker(pytest.mark.integration)
        (last if item.get_closest_marker("cluster_lifecycle") else first).append(item)
    items[:] = first + last


def wait_for(predicate, timeout=15.0, interval=0.1, message="condition"):
    """Poll predicate() until it returns a truthy value (an exception counts as "not yet"); return that value or
    fail the test after timeout, naming ``message`` and the last error."""
    try:
        return kubeclient.wait_for(predicate, timeout, interval, message)
    except kubeclient.WaitTimeout as exc:
        pytest.fail(str(exc))


class KubeEnv(kubeclient.KubeClient):
    """The cluster of the session: a ``kubeclient.KubeClient`` (``api_client``, ``core``, ``apps``, ``batch``,
    ``rbac``, ``custom``, ``host``, ``env``, ``pods()``, ...) plus what the tests ask about it."""

    def __init__(self, kubeconfig, local, up_output=""):
        super().__init__(kubeconfig)
        self.local = local
        self.up_output = up_output
        self.wait_for = wait_for
        self.nodesim = bool(self.core.list_node(label_selector=NODESIM_LABEL + "=true").items)

    def __repr__(self):
        return "KubeEnv(%s, local=%s, nodesim=%s)" % (self.host, self.local, self.nodesim)


def _run_up():
    env = dict(os.environ)
    env.pop("MESHOPS_UP_LOCKED", None)
    proc = subprocess.run(
        [str(ROOT / "tools" / "cluster" / "up.sh")], cwd=str(ROOT), env=env, capture_output=True, text=True,
        timeout=3600, check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def kube():
    if user_supplied_cluster():
        env = KubeEnv(USER_KUBECONFIG, local=False)
        try:
            env.core.list_namespace(limit=1)
        except Exception as exc:  # pylint: disable=broad-except
            pytest.fail("KUBECONFIG=%s: the cluster cannot be reached: %s" % (USER_KUBECONFIG, exc))
        return env
    rc, out = _run_up()
    if rc == 2:
        pytest.skip("local control plane unavailable on this machine:\n" + out)
    if rc != 0:
        pytest.fail("tools/cluster/up.sh failed (exit %d):\n%s" % (rc, out[-6000:]))
    return KubeEnv(LOCAL_KUBECONFIG, local=True, up_output=out)


@pytest.fixture
def nodesim(kube):
    """Skip unless the pods run on simulated nodes (deterministic statuses, failure injection)."""
    if not kube.nodesim:
        pytest.skip("needs the node simulator (tools/nodesim); this cluster has no simulated nodes")
    return kube


def _slug(text, size=30):
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:size].strip("-") or "t"


def create_namespace(kube, prefix):
    """A fresh namespace ``<prefix>-<6 hex>`` labelled ``meshops.io/test=integration``, its default ServiceAccount
    ready."""
    name = kube.create_namespace("%s-%s" % (_slug(prefix, 40), uuid.uuid4().hex[:6]), labels={"meshops.io/test": "integration"})
    try:
        kube.wait_default_service_account(name, timeout=30)
    except kubeclient.WaitTimeout as exc:
        pytest.fail(str(exc))
    return name


@pytest.fixture
def namespace(kube, request):
    name = create_namespace(kube, "it-" + _slug(request.node.name, 30))
    yield name
    kube.delete_namespace(name)


# ------------------------------------------------------------------------------ least privilege


def rbac_documents():
    with open(RBAC_FILE, encoding="utf-8") as handle:
        return [d for d in yaml.safe_load_all(handle) if d]


class Principal(kubeclient.KubeClient):
    """Credentials of a ServiceAccount bound to exactly the collection role: a ``kubeclient.KubeClient`` on a
    bearer-token kubeconfig of its own (``kubeconfig``), ``env`` with the ``K8S_AUTH_*`` variables too."""

    def __init__(self, kube, namespace, service_account, token, path):
        self.namespace = namespace
        self.service_account = service_account
        self.username = "system:serviceaccount:%s:%s" % (namespace, service_account)
        self.token = token
        with open(kube.kubeconfig, encoding="utf-8") as handle:
            admin = yaml.safe_load(handle)
        ctx_name = admin.get("current-context")
        ctx = next(c["context"] for c in admin["contexts"] if c["name"] == ctx_name)
        cluster = dict(next(c["cluster"] for c in admin["clusters"] if c["name"] == ctx["cluster"]))
        ca_file = cluster.get("certificate-authority")
        if ca_file and not os.path.isabs(ca_file):
            cluster["certificate-authority"] = os.path.join(os.path.dirname(kube.kubeconfig), ca_file)
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": service_account, "user": {"token": token}}],
            "contexts": [{"name": "lp", "context": {"cluster": "c", "user": service_account, "namespace": namespace}}],
            "current-context": "lp",
        }
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        os.chmod(path, 0o600)
        super().__init__(path)
        self.verify_ssl = not cluster.get("insecure-skip-tls-verify")

    @property
    def env(self):
        return dict(super().env, K8S_AUTH_HOST=self.host, K8S_AUTH_API_KEY=self.token,
                    K8S_AUTH_VERIFY_SSL="true" if self.verify_ssl else "false")

    def __repr__(self):
        return "Principal(%s)" % self.username


def _apply(create, replace, body, *ns):
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

    try:
        create(*ns, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        replace(body["metadata"]["name"], *ns, body)


def _service_account_token(kube, ns, sa_name):
    """ServiceAccount + a bound token from the TokenRequest API (what kubelet and kubectl create-token use; a
    legacy token Secret makes the API server warn on every request since 1.24)."""
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    kube.core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=sa_name)))
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=24 * 3600))
    return kube.core.create_namespaced_service_account_token(sa_name, ns, request).status.token


def _roles(kind):
    return [d for d in rbac_documents() if d["kind"] == kind and d["metadata"]["name"] == COLLECTION_ROLE]


@pytest.fixture(scope="session")
def least_privilege(kube, tmp_path_factory):
    from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

    (role,) = _roles("ClusterRole")
    _apply(kube.rbac.create_cluster_role, kube.rbac.replace_cluster_role, role)
    ns = create_namespace(kube, "meshops-lp")
    sa_name = "meshops-collection"
    binding_name = "%s-%s" % (COLLECTION_ROLE, ns)
    kube.rbac.create_cluster_role_binding({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": binding_name, "labels": {"meshops.io/test": "integration"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": COLLECTION_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": ns}],
    })
    token = _service_account_token(kube, ns, sa_name)
    principal = Principal(kube, ns, sa_name, token, tmp_path_factory.mktemp("least-privilege") / "kubeconfig")
    yield principal
    try:
        kube.rbac.delete_cluster_role_binding(binding_name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    kube.delete_namespace(ns)


@pytest.fixture
def least_privilege_ns(kube, namespace, tmp_path):
    (role,) = _roles("Role")
    role = dict(role, metadata=dict(role["metadata"], namespace=namespace))
    kube.rbac.create_namespaced_role(namespace, role)
    sa_name = "meshops-collection"
    kube.rbac.create_namespaced_role_binding(namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": COLLECTION_ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": COLLECTION_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}],
    })
    token = _service_account_token(kube, namespace, sa_name)
    return Principal(kube, namespace, sa_name, token, tmp_path / "kubeconfig")
