"""tools/faultproxy against a real HTTP upstream on loopback (http.server), without an API server: every fault the
fault tests use does what they count on (a burst never reaches the upstream unless forwarded, a drop loses the
request or only its answer, an expired watch is a 410 ERROR event, a cut refuses until healed)."""

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from faultproxy import FaultProxy


class Upstream(BaseHTTPRequestHandler):
    hits = []

    def do_GET(self):  # pylint: disable=invalid-name
        self.hits.append(self.path)
        body = json.dumps({"path": self.path, "n": len(self.hits)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


@pytest.fixture
def proxy():
    Upstream.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with FaultProxy("http://127.0.0.1:%d" % server.server_address[1], seed=1) as running:
        yield running
    server.shutdown()


def get(proxy, path):
    """One request on a connection of its own: ``(status, body)``, or ``(None, error)`` when it got no answer."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (ConnectionError, http.client.HTTPException) as exc:
        return None, exc
    finally:
        conn.close()


def test_requests_pass_and_are_logged(proxy):
    status, body = get(proxy, "/api/v1/namespaces/ns/pods?watch=false")
    assert status == 200 and json.loads(body)["path"] == "/api/v1/namespaces/ns/pods?watch=false"
    assert proxy.stats["requests"] == 1 and list(proxy.log) == [("GET", "/api/v1/namespaces/ns/pods?watch=false")]


def test_bursts_answer_instead_of_the_upstream_or_after_it(proxy):
    proxy.burst(503, 1)
    proxy.burst(500, 1, forward=True)
    proxy.burst(429, 1)
    assert get(proxy, "/a")[0] == 503 and Upstream.hits == []
    assert get(proxy, "/b")[0] == 500 and Upstream.hits == ["/b"]      # the request landed, its answer replaced
    status, body = get(proxy, "/c")
    assert status == 429 and json.loads(body)["code"] == 429 and Upstream.hits == ["/b"]
    assert get(proxy, "/d")[0] == 200 and proxy.stats["burst"] == 3 and proxy.stats["burst_forwarded"] == 1


def test_drops_lose_the_request_or_only_its_answer(proxy):
    proxy.drop(0, first=2)
    results = [get(proxy, "/one"), get(proxy, "/two")]
    assert all(status is None for status, dummy in results)
    assert proxy.stats["dropped_before"] == 1 and proxy.stats["dropped_after"] == 1
    assert len(Upstream.hits) == 1                                    # one reached the upstream, neither answered
    assert get(proxy, "/three")[0] == 200


def test_an_expired_watch_is_a_410_error_event(proxy):
    proxy.expire_watches(1)
    assert get(proxy, "/api/v1/namespaces/ns/pods")[0] == 200         # not a watch: passes
    status, body = get(proxy, "/api/v1/namespaces/ns/pods?watch=true&resourceVersion=5")
    event = json.loads(body.decode().strip())
    assert status == 200 and event["type"] == "ERROR" and event["object"]["code"] == 410
    assert get(proxy, "/api/v1/namespaces/ns/pods?watch=true&resourceVersion=6")[0] == 200
    assert proxy.stats["watches_expired"] == 1 and len(Upstream.hits) == 2


def test_a_cut_refuses_until_healed(proxy):
    proxy.cut("refuse")
    assert get(proxy, "/a")[0] is None and Upstream.hits == []
    proxy.heal()
    assert get(proxy, "/b")[0] == 200 and proxy.stats["refused"] >= 1
