# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An unreachable API server is one line naming the URL and the cause (issue 11, P7). 127.0.0.1 only."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import ssl

import pytest

kubernetes = pytest.importorskip("kubernetes")

# pylint: disable=wrong-import-position
from ansible_collections.meshops.sidecarset.plugins.module_utils import client as client_mod
from ansible_collections.meshops.sidecarset.plugins.module_utils.kube import KubeError
from ansible_collections.meshops.sidecarset.plugins.module_utils.transport import transport_cause, unreachable_message


@pytest.fixture
def closed_port():
    """A local TCP port nothing listens on (bound, then closed)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def configuration(url):
    config = kubernetes.client.Configuration()
    config.host = url
    config.retries = 0
    return config


def test_request_to_a_closed_port_names_url_and_cause(closed_port):
    url = "https://127.0.0.1:%d" % closed_port
    client = client_mod.kube_client(configuration(url))
    with pytest.raises(KubeError) as info:
        client.list_namespaces()
    assert info.value.status == 0
    assert str(info.value) == "cannot reach the Kubernetes API at %s: connection refused" % url
    assert "\n" not in str(info.value) and "HTTPSConnectionPool" not in str(info.value)


def test_client_from_options_to_a_closed_port_names_url_and_cause(closed_port):
    """kubernetes.core's get_api_client already asks the server for /version (discovery)."""
    url = "https://127.0.0.1:%d" % closed_port
    with pytest.raises(KubeError) as info:
        client_mod.client_from_options(host=url, api_key="token", validate_certs=False)
    assert str(info.value) == "cannot reach the Kubernetes API at %s: connection refused" % url


def test_a_bug_in_a_request_is_not_reported_as_unreachable(closed_port):
    client = client_mod.kube_client(configuration("https://127.0.0.1:%d" % closed_port))

    def broken(*args, **kwargs):
        raise TypeError("Object of type set is not JSON serializable")

    client.api.param_serialize = broken
    with pytest.raises(TypeError):
        client.list_namespaces()


def chained(outer, inner):
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except BaseException as exc:  # pylint: disable=broad-except
        return exc


@pytest.mark.parametrize("error,cause", [
    (chained(RuntimeError("pool says"), ConnectionRefusedError(111, "Connection refused")), "connection refused"),
    (chained(RuntimeError("connect timeout"), socket.timeout("timed out")), "timed out"),
    (chained(RuntimeError("resolve"), socket.gaierror(-2, "Name or service not known")),
     "cannot resolve the host name: Name or service not known"),
    (chained(RuntimeError("tls"), ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")), "TLS error:"),
    (RuntimeError("Remote end closed connection\nwithout response"), "Remote end closed connection without response"),
])
def test_transport_cause(error, cause):
    assert " ".join(transport_cause(error).split()).startswith(cause)
    message = unreachable_message("https://127.0.0.1:1", error)
    assert message.startswith("cannot reach the Kubernetes API at https://127.0.0.1:1: " + cause) and "\n" not in message


def throttled_discovery(monkeypatch, failures):
    """kubernetes.core's get_api_client answering ``failures`` (HTTP statuses, as kubernetes.dynamic raises them)
    first, then a client."""
    from kubernetes.dynamic.exceptions import api_exception  # pylint: disable=import-outside-toplevel

    calls = []

    def fake_get_api_client(**kwargs):
        calls.append(kwargs)
        if len(calls) <= len(failures):
            body = '{"kind": "Status", "message": "throttled %d"}' % failures[len(calls) - 1]
            exc = kubernetes.client.exceptions.ApiException(status=failures[len(calls) - 1], reason="Too Many Requests")
            exc.body, exc.headers = body, {"Content-Type": "application/json"}
            raise api_exception(exc)
        return "client"

    monkeypatch.setattr(client_mod, "get_api_client", fake_get_api_client)
    return calls


def test_a_throttled_discovery_is_asked_again_within_a_bound(monkeypatch):
    calls = throttled_discovery(monkeypatch, [429, 503])
    slept = []
    assert client_mod.api_client(transient=[0.1, 0.2, 0.4], sleep=slept.append, host="h") == "client"
    assert slept == [0.1, 0.2] and len(calls) == 3 and calls[0] == {"host": "h"}
    throttled_discovery(monkeypatch, [429] * 5)
    with pytest.raises(KubeError) as info:
        client_mod.api_client(transient=[0, 0], sleep=lambda s: None)
    assert info.value.status == 429 and str(info.value) == "HTTP 429: API discovery failed: throttled 429"
    calls = throttled_discovery(monkeypatch, [401])
    with pytest.raises(KubeError) as info:  # not transient: reported at once, as a KubeError (not "a bug")
        client_mod.api_client(transient=[0, 0], sleep=lambda s: None)
    assert info.value.status == 401 and len(calls) == 1
