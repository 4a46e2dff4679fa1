"""tools/kubeclient.py: the repository's one raw Kubernetes client, against kubeconfig files written here and a
small HTTP server on an ephemeral loopback port that answers like the API server (no cluster)."""

import json
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3
import yaml

import kubeclient
from kubeclient import KubeClient, WaitTimeout, pod_ready, wait_for
from nodesim.kube import Kube


def write_kubeconfig(path, server, contexts=None, current="main"):
    """A kubeconfig with one cluster per context: ``contexts`` = {name: (server, user dict)}."""
    contexts = contexts or {"main": (server, {"token": "admin-token"})}
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": n, "cluster": {"server": s, "insecure-skip-tls-verify": True}} for n, (s, _u) in contexts.items()],
        "users": [{"name": n, "user": u} for n, (_s, u) in contexts.items()],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in contexts],
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


class FakeAPI:
    """Answers ``routes[(method, path)] = (status, body)``; 404 for the rest; records (method, path, headers)."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                api.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                route = api.routes.get((self.command, self.path))
                if callable(route):
                    route = route()
                status, doc = route or (404, {"kind": "Status", "code": 404, "reason": "NotFound"})
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _answer

            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api():
    with FakeAPI() as running:
        yield running


def pod(name, ready=True, phase="Running", deleting=False, containers=("app", "proxy")):
    meta = {"name": name, "namespace": "ns", "uid": "uid-" + name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"containers": [{"name": c, "image": c + ":1"} for c in containers]},
            "status": {"phase": phase, "containerStatuses": [{"name": c, "ready": ready} for c in containers]}}


# ------------------------------------------------------------------------------ configuration


def test_client_from_a_kubeconfig_file_with_pool_size_and_user_agent(tmp_path, api):
    path = write_kubeconfig(tmp_path / "kubeconfig", api.url)
    kube = KubeClient(path, pool_size=16, user_agent="meshops-test")
    assert kube.host == api.url and kube.kubeconfig == path
    assert kube.configuration.connection_pool_maxsize == 16
    assert kube.configuration.verify_ssl is False
    api.routes[("GET", "/api/v1/namespaces")] = (200, {"kind": "NamespaceList", "metadata": {}, "items": []})
    assert kube.core.list_namespace().items == []
    _method, _path, headers, _body = api.requests[-1]
    assert headers["user-agent"] == "meshops-test"
    assert headers["authorization"] == "Bearer admin-token"       # the bearer-token kubeconfig (conftest's Principal)


def test_defaults_keep_the_clients_own_pool_and_user_agent(tmp_path, api):
    kube = KubeClient(write_kubeconfig(tmp_path / "kubeconfig", api.url))
    assert kube.configuration.connection_pool_maxsize == kubeclient.client.Configuration().connection_pool_maxsize
    assert kube.api_client.user_agent.startswith("OpenAPI-Generator/")


def test_context_chooses_the_cluster_and_user(tmp_path):
    path = write_kubeconfig(tmp_path / "kubeconfig", None, {
        "main": ("https://127.0.0.1:1", {"token": "a"}), "other": ("https://127.0.0.1:2", {"token": "b"})})
    assert KubeClient(path).host == "https://127.0.0.1:1"
    other = KubeClient(path, context="other")
    assert other.host == "https://127.0.0.1:2"
    assert list(other.configuration.api_key.values()) == ["Bearer b"]


def test_a_missing_kubeconfig_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(kubeclient.config.ConfigException, match=r"no-such-kubeconfig: Invalid kube-config file"):
        KubeClient(str(tmp_path / "no-such-kubeconfig"))
    (tmp_path / "empty").write_text("", encoding="utf-8")
    with pytest.raises(kubeclient.config.ConfigException, match=r"/empty: "):
        KubeClient(str(tmp_path / "empty"))


def version(minor):
    return {"major": "1", "minor": minor, "gitVersion": "v1.%s.0" % minor, "gitCommit": "", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.26", "compiler": "gc", "platform": "linux/amd64"}


def test_typed_apis_share_the_one_api_client(tmp_path, api):
    kube = KubeClient(write_kubeconfig(tmp_path / "kubeconfig", api.url))
    for name in ("core", "apps", "batch", "rbac", "custom", "apiextensions", "admissionregistration"):
        typed = getattr(kube, name)
        assert typed.api_client is kube.api_client, name
        assert getattr(kube, name) is typed, name   # made once


def test_env_names_the_kubeconfig_as_an_absolute_path(tmp_path, api, monkeypatch):
    write_kubeconfig(tmp_path / "kubeconfig", api.url)
    monkeypatch.chdir(tmp_path)
    env = KubeClient("kubeconfig").env
    assert env == {"KUBECONFIG": str(tmp_path / "kubeconfig"), "K8S_AUTH_KUBECONFIG": str(tmp_path / "kubeconfig")}


def test_env_of_a_client_from_the_default_kubeconfig_says_what_to_pass(tmp_path, api, monkeypatch):
    # the client reads $KUBECONFIG when it is imported: its default location
    monkeypatch.setattr(kubeclient.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", write_kubeconfig(tmp_path / "kubeconfig", api.url))
    kube = KubeClient()
    assert kube.host == api.url
    with pytest.raises(ValueError, match="pass kubeconfig=FILE"):
        kube.env  # pylint: disable=pointless-statement


def test_quiet_tls_silences_only_the_insecure_request_warning(tmp_path, api):
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        KubeClient(write_kubeconfig(tmp_path / "kubeconfig", api.url), quiet_tls=True)
        with warnings.catch_warnings(record=True) as seen:
            warnings.warn("self-signed", urllib3.exceptions.InsecureRequestWarning)
            warnings.warn("other", urllib3.exceptions.HTTPWarning)
    assert [str(w.message) for w in seen] == ["other"]


def test_plain_is_the_clients_serialization(tmp_path, api):
    kube = KubeClient(write_kubeconfig(tmp_path / "kubeconfig", api.url))
    model = kubeclient.client.V1Pod(metadata=kubeclient.client.V1ObjectMeta(name="p", labels={"a": "b"}))
    assert kube.plain(model) == {"metadata": {"name": "p", "labels": {"a": "b"}}}
    assert kube.plain([model]) == [{"metadata": {"name": "p", "labels": {"a": "b"}}}]


# ------------------------------------------------------------------------------ pods, namespaces, nodes


def test_list_pods_is_the_raw_json_with_its_resource_version(tmp_path, api):
    kube = KubeClient(write_kubeconfig(tmp_path / "kubeconfig", api.url))
    items = [pod("a"), pod("b", deleting=True)]
    api.routes[("GET", "/api/v1/namespaces/ns/pods?labelSelector=app%3Dx")] = (
        200, {"kind": "PodList", "metadata": {"resourceVersion": "42"}, "items": items})
    api.routes[("GET", "/api/v1/pods")] = (200, {"kind": "PodList", "metadata": {"resourceVersion": "43"}, "items": items[:1]})
    assert kube.list_pods("ns", "app=x") == (items, "42")
    assert kube.list_pods("ns", "app=x", live=True) == (items[:1], "42")
    assert kube.pods("ns", "app=x") == items[:1]
    assert kube.list_pods() == (items[:1], "43")           # every namespace


def test_wait_pods_ready_returns_the_pods_once_all_are_ready(tmp_path, api):
    kube = KubeClient(write_kubeconfig(tmp_path / "kubeconfig", api.url))
    answers = iter([[pod("a", ready=False)], [pod("a"), pod("b", phase="Pending")], [pod("a"), pod("b")]])
    last = []

    def pods():
        last[:] = next(answers, last)    # each list one step further, then the last one again
        return 200, {"kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": last}

    api.routes[("GET", "/api/v1/namespaces/ns/pods")] = pods
    ready = kube.wait_pods_ready("ns", 2, timeout=10, interval=0.01)
    assert [p["metadata"]["name"] for p in ready] == ["a", "b"]


def test_wait_pods_ready_names_each_pod_when_it_times_out(tmp_path, api):
    kube = KubeClient(write_kubeconfig(tmp_path / "kubeconfig", api.url))
    api.routes[("GET", "/api/v1/namespaces/ns/pods")] = (200, {"kind": "PodList", "metadata": {"resourceVersion": "1"},
                                                               "items": [pod("a"), pod("b", ready=False, phase="Pending")]})
    with pytest.raises(WaitTimeout) as err:
        kube.wait_pods_ready("ns", 2, timeout=0.2, interval=0.05)
    assert "waiting for 2 ready pod(s) in ns" in str(err.value)
    assert "('a', 'Running', '2/2 ready')" in str(err.value) and "('b', 'Pending', '0/2 ready')" in str(err.value)


def test_create_namespace_with_labels_and_exist_ok(tmp_path, api):
    kube = KubeClient(write_kubeconfig(tmp_path / "kubeconfig", api.url))
    api.routes[("POST", "/api/v1/namespaces")] = (201, {"kind": "Namespace", "metadata": {"name": "n1"}})
    assert kube.create_namespace("n1", labels={"t": "x"}) == "n1"
    assert json.loads(api.requests[-1][3]) == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n1", "labels": {"t": "x"}}}
    api.routes[("POST", "/api/v1/namespaces")] = (409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"})
    assert kube.create_namespace("n1", exist_ok=True) == "n1"
    with pytest.raises(kubeclient.ApiException) as err:
        kube.create_namespace("n1")
    assert err.value.status == 409


def test_delete_namespace_ignores_a_missing_one_and_waits_until_gone(tmp_path, api):
    kube = KubeClient(write_kubeconfig(tmp_path / "kubeconfig", api.url))
    assert kube.delete_namespace("absent", wait=5) is False            # 404 on DELETE: nothing to wait for
    reads = []

    def read():
        reads.append(1)
        return (200, {"kind": "Namespace", "metadata": {"name": "n1"}}) if len(reads) < 3 else (404, {"kind": "Status", "code": 404})

    api.routes[("DELETE", "/api/v1/namespaces/n1")] = (200, {"kind": "Namespace", "metadata": {"name": "n1"}})
    api.routes[("GET", "/api/v1/namespaces/n1")] = read
    assert kube.delete_namespace("n1", wait=10) is True
    assert len(reads) == 3


def test_delete_namespace_that_stays_is_a_timeout_naming_it(tmp_path, api):
    kube = KubeClient(write_kubeconfig(tmp_path / "kubeconfig", api.url))
    api.routes[("DELETE", "/api/v1/namespaces/n1")] = (200, {"kind": "Namespace", "metadata": {"name": "n1"}})
    api.routes[("GET", "/api/v1/namespaces/n1")] = (200, {"kind": "Namespace", "metadata": {"name": "n1"}})
    with pytest.raises(WaitTimeout, match="namespace n1 to be deleted"):
        kube.delete_namespace("n1", wait=0.3)


@pytest.mark.parametrize("minor, secrets, ready", [("36", None, True), ("23", None, False), ("23", [{"name": "t"}], True)])
def test_default_service_account_needs_its_token_secret_only_before_1_24(tmp_path, api, minor, secrets, ready):
    kube = KubeClient(write_kubeconfig(tmp_path / "kubeconfig", api.url))
    api.routes[("GET", "/version/")] = (200, version(minor))
    account = {"kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "ns"}}
    if secrets:
        account["secrets"] = secrets
    api.routes[("GET", "/api/v1/namespaces/ns/serviceaccounts/default")] = (200, account)
    if ready:
        assert kube.wait_default_service_account("ns", timeout=2).metadata.name == "default"
    else:
        with pytest.raises(WaitTimeout, match="ServiceAccount ns/default"):
            kube.wait_default_service_account("ns", timeout=0.3)
    assert kube.server_minor() == int(minor)


def test_ready_nodes_and_the_command_line(tmp_path, api, capsys):
    path = write_kubeconfig(tmp_path / "kubeconfig", api.url)

    def node(name, ready):
        return {"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": ready}]}}

    api.routes[("GET", "/api/v1/nodes?labelSelector=meshops.io/node-kind%3Dreal")] = (200, {
        "kind": "NodeList", "metadata": {}, "items": [node("r0", "False"), node("r1", "True"), node("r2", "True")]})
    assert KubeClient(path).ready_nodes("meshops.io/node-kind=real") == ["r1", "r2"], api.requests[-1][1]
    assert kubeclient.main(["--kubeconfig", path, "ready-nodes", "meshops.io/node-kind=real"]) == 0
    assert capsys.readouterr().out == "r1\nr2\n"


def test_the_node_simulators_kube_runs_on_it(tmp_path, api):
    kube = Kube(KubeClient(write_kubeconfig(tmp_path / "kubeconfig", api.url), pool_size=16))
    api.routes[("GET", "/api/v1/pods")] = (200, {"kind": "PodList", "metadata": {"resourceVersion": "7"}, "items": [pod("a")]})
    assert kube.list_pods() == ([pod("a")], "7")
    assert kube.server_version() == "v0.0.0"       # no /version/ here: best effort
    api.routes[("GET", "/version/")] = (200, version("36"))
    assert kube.server_version() == "v1.36.0"


# ------------------------------------------------------------------------------ pure helpers


def test_wait_for_returns_the_first_truthy_value_and_retries_errors():
    calls = []

    def predicate():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("not yet")
        return len(calls) >= 3 and "value"

    assert wait_for(predicate, 5, 0.01, "x") == "value"
    assert len(calls) == 3


def test_wait_for_times_out_naming_what_and_the_last_error():
    def predicate():
        raise KeyError("status")

    with pytest.raises(WaitTimeout, match=r"timed out after 0\.1s waiting for the thing \(last error: KeyError\('status'\)\)"):
        wait_for(predicate, 0.1, 0.02, "the thing")


def test_wait_for_lets_an_error_it_does_not_retry_through():
    def predicate():
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        wait_for(predicate, 5, 0.01, "x", retry_on=(OSError,))


def test_pod_ready():
    assert pod_ready(pod("a"))
    assert not pod_ready(pod("a", ready=False))
    assert not pod_ready(pod("a", phase="Pending"))
    short = pod("a")
    short["status"]["containerStatuses"].pop()       # a container without a status yet
    assert not pod_ready(short)
    assert not pod_ready({"metadata": {"name": "a"}, "spec": {"containers": [{"name": "c"}]}})


def test_read_json_releases_the_connection():
    class Resp:
        data = b'{"a": 1}'
        released = False

        def release_conn(self):
            self.released = True

    resp = Resp()
    assert kubeclient.read_json(resp) == {"a": 1} and resp.released
    bad = Resp()
    bad.data = b"{not json"
    with pytest.raises(ValueError):
        kubeclient.read_json(bad)
    assert bad.released
