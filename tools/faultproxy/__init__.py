"""faultproxy: an HTTP-aware fault proxy between the collection and the Kubernetes API server (asyncio, stdlib only).

The collection talks plain HTTP to the proxy on loopback (a kubeconfig with ``server: http://127.0.0.1:PORT`` and
the cluster's bearer token); the proxy forwards every request over TLS to the API server. Plain HTTP on the client
side is what lets the proxy see request boundaries (to answer 5xx/429 instead of the API server, or to lose the
answer of a request the API server did process) without holding the cluster's serving key; TLS itself is not
what is under test.

Faults (all changeable while it runs, from any thread):

* ``latency(mean, jitter)``: every request waits ``mean +- jitter`` seconds (uniform) before it is forwarded.
* ``drop(probability, first)``: the next ``first`` requests, then each with ``probability``, are answered by
  closing the connection, half of them before forwarding
  (never reached the server) and half after the API server answered (the answer is lost).
* ``reset_all()``: close every open connection now (watches included).
* ``cut(mode)`` / ``heal()``: ``refuse`` closes every connection and refuses new ones (connection reset at once);
  ``blackhole`` keeps client sockets open and silent (requests hang until the client's own timeout).
* ``burst(status, count, forward=False)``: the next ``count`` requests get ``status`` (e.g. 503, 429 with
  ``Retry-After: 1``); with ``forward=True`` they are sent to the API server first and its answer is replaced
  (a write that landed, reported as failed).
* ``expire_watches(count)``: the next ``count`` watch requests are answered as the API server answers a watch
  from a resourceVersion it no longer holds: 200, one ``ERROR`` event with a ``410 Expired`` Status, end of stream
  (the client must re-list).

``stats`` counts requests by method and the faults injected; ``log`` keeps the method and target of the last
10,000 requests (e.g. the ``resourceVersion`` each watch starts from). Run in-process (``FaultProxy(...).start()``, as the
tests do) or from the command line: ``PYTHONPATH=tools python -m faultproxy --upstream https://127.0.0.1:16443
--port 19480``.
"""

import asyncio
import collections
import json
import random
import ssl
import threading
import time
from urllib.parse import urlsplit

REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}


class HttpRequest:
    def __init__(self, head, body):
        self.head, self.body = head, body
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        self.method = parts[0] if parts else ""
        self.target = parts[1] if len(parts) > 1 else ""

    @property
    def is_watch(self):
        return "watch=true" in self.target or "watch=1" in self.target

    def with_close(self):
        """The request with ``Connection: close`` (for a one-shot upstream connection)."""
        lines = [l for l in self.head.split(b"\r\n") if l and not l.lower().startswith(b"connection:")]
        return b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n" + self.body


async def read_request(reader):
    """One HTTP/1.1 request (head + Content-Length or chunked body), or ``None`` at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, dummy, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip() or 0)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    body = b""
    if chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            chunk = await reader.readexactly(size + 2)
            body += size_line + chunk
            if size == 0:
                break
    elif length:
        body = await reader.readexactly(length)
    return HttpRequest(head, body)


def status_response(status, message, close=False):
    body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                       "reason": "TooManyRequests" if status == 429 else "ServiceUnavailable" if status == 503 else "InternalError",
                       "code": status}).encode()
    head = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Error")), "Content-Type: application/json",
            "Content-Length: %d" % len(body)]
    if status == 429:
        head.append("Retry-After: 1")
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def expired_watch_response():
    """What kube-apiserver answers a watch from a compacted resourceVersion: 200, one ERROR event carrying a
    ``410 Expired`` Status, then the end of the (chunked) stream."""
    event = json.dumps({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "faultproxy: too old resource version", "reason": "Expired", "code": 410}}).encode() + b"\n"
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head.encode() + b"%x\r\n" % len(event) + event + b"\r\n0\r\n\r\n"


class FaultProxy:
    """See the module docstring."""

    def __init__(self, upstream, port=0, host="127.0.0.1", ca_file=None, seed=0):
        parts = urlsplit(upstream)
        self.up_host, self.up_port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        self.up_tls = parts.scheme == "https"
        self.host, self.port = host, port
        self.ca_file = ca_file
        self.rand = random.Random(seed)
        self.stats = {"requests": 0, "by_method": {}, "watches": 0, "delayed": 0, "dropped_before": 0, "dropped_after": 0,
                      "burst": 0, "burst_forwarded": 0, "refused": 0, "blackholed": 0, "resets": 0,
                      "watches_expired": 0}
        self.log = collections.deque(maxlen=10000)
        self._expire = 0
        self._latency = (0.0, 0.0)
        self._drop = 0.0
        self._drop_next = 0
        self._burst = []           # [(status, forward)] for the next requests
        self._cut = None           # None, "refuse" or "blackhole"
        self._lock = threading.Lock()
        self._conns = set()
        self._held = set()
        self._loop = None
        self._server = None
        self._thread = None
        self._ready = threading.Event()

    # -- control (any thread) ----------------------------------------------------------------------
    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def latency(self, mean, jitter=0.0):
        self._latency = (float(mean), float(jitter))

    def drop(self, probability, first=0):
        """Drop each request with ``probability``; the next ``first`` requests are dropped in any case."""
        self._drop = float(probability)
        with self._lock:
            self._drop_next = int(first)

    def burst(self, status, count, forward=False):
        with self._lock:
            self._burst.extend([(int(status), bool(forward))] * int(count))

    def expire_watches(self, count):
        with self._lock:
            self._expire += int(count)

    def cut(self, mode="refuse"):
        if mode not in ("refuse", "blackhole"):
            raise ValueError("cut mode must be refuse or blackhole")
        self._cut = mode
        self.reset_all(keep_clients=mode == "blackhole")

    def heal(self):
        self._cut = None
        self._call(self._release_held)

    def clear(self):
        """No faults: no latency, no drops, no pending burst, not cut."""
        self._latency, self._drop = (0.0, 0.0), 0.0
        with self._lock:
            self._burst = []
            self._expire = 0
        self.heal()

    def reset_all(self, keep_clients=False):
        self._call(lambda: self._close_all(keep_clients))

    def _call(self, func):
        if self._loop is not None:
            done = threading.Event()

            def run():
                try:
                    func()
                finally:
                    done.set()
            self._loop.call_soon_threadsafe(run)
            done.wait(5)

    def _count(self, key, amount=1):
        with self._lock:
            self.stats[key] += amount

    # -- loop ----------------------------------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._main, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("faultproxy did not start")
        return self

    def stop(self):
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _main(self):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, self.host, self.port))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            self._close_all(False)

    def _ssl(self):
        if not self.up_tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        if not self.ca_file:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _open_upstream(self):
        return await asyncio.open_connection(self.up_host, self.up_port, ssl=self._ssl())

    def _close_all(self, keep_clients):
        self._count("resets")
        for conn in list(self._conns):
            conn.close(keep_client=keep_clients)

    def _release_held(self):
        for writer in list(self._held):
            writer.close()
        self._held.clear()

    async def _client(self, reader, writer):
        if self._cut == "refuse":
            self._count("refused")
            writer.transport.abort()
            return
        if self._cut == "blackhole":
            self._count("blackholed")
            self._held.add(writer)
            return
        conn = _Connection(self, reader, writer)
        self._conns.add(conn)
        try:
            await conn.serve()
        finally:
            self._conns.discard(conn)
            conn.close()

    def next_fault(self, request):
        """The fault for ``request``: ``None``, ``("burst", status, forward)``, ``("drop", before)``, ``("expire",)``."""
        with self._lock:
            self.stats["requests"] += 1
            self.stats["by_method"][request.method] = self.stats["by_method"].get(request.method, 0) + 1
            self.log.append((request.method, request.target))
            if request.is_watch:
                self.stats["watches"] += 1
                if self._expire > 0:
                    self._expire -= 1
                    return ("expire",)
            if self._burst:
                status, forward = self._burst.pop(0)
                return ("burst", status, forward)
            if self._drop_next > 0:
                self._drop_next -= 1
                return ("drop", self._drop_next % 2 == 0)
            if self._drop and self.rand.random() < self._drop:
                return ("drop", self.rand.random() < 0.5)
        return None

    def delay(self):
        mean, jitter = self._latency
        if mean <= 0 and jitter <= 0:
            return 0.0
        with self._lock:
            return max(0.0, self.rand.uniform(mean - jitter, mean + jitter))


class _Connection:
    """One client connection: requests parsed one at a time, forwarded on one upstream connection; the answers
    (watch streams included) are copied back as they come."""

    def __init__(self, proxy, reader, writer):
        self.proxy, self.reader, self.writer = proxy, reader, writer
        self.up_reader = self.up_writer = None
        self.pump = None
        self.closed = False

    def close(self, keep_client=False):
        if self.up_writer is not None:
            self.up_writer.transport.abort()
            self.up_writer = None
        if self.pump is not None:
            self.pump.cancel()
        if keep_client:
            self.proxy._held.add(self.writer)  # silent until heal()
        elif not self.closed:
            self.writer.transport.abort()
        self.closed = True

    async def _pump(self):
        try:
            while True:
                data = await self.up_reader.read(65536)
                if not data:
                    break
                self.writer.write(data)
                await self.writer.drain()
        except (ConnectionError, asyncio.CancelledError, OSError):
            pass
        finally:
            if not self.closed:
                self.close()

    async def serve(self):
        while not self.closed:
            request = await read_request(self.reader)
            if request is None or self.closed:
                return
            delay = self.proxy.delay()
            if delay:
                self.proxy._count("delayed")
                await asyncio.sleep(delay)
            if self.closed or self.proxy._cut:
                return
            fault = self.proxy.next_fault(request)
            if fault is None:
                if self.up_writer is None:
                    self.up_reader, self.up_writer = await self.proxy._open_upstream()
                    self.pump = asyncio.ensure_future(self._pump())
                self.up_writer.write(request.head + request.body)
                await self.up_writer.drain()
                continue
            if fault[0] == "expire":
                self.proxy._count("watches_expired")
                self.writer.write(expired_watch_response())
                await self.writer.drain()
                continue
            if fault[0] == "burst":
                status, forward = fault[1], fault[2]
                if forward:
                    await self._one_shot(request)
                    self.proxy._count("burst_forwarded")
                self.proxy._count("burst")
                self.writer.write(status_response(status, "faultproxy: injected %d%s" % (
                    status, " after the API server answered" if forward else "")))
                await self.writer.drain()
                continue
            # drop: close without an answer, before or after the API server processed the request
            if not fault[1]:
                await self._one_shot(request)
                self.proxy._count("dropped_after")
            else:
                self.proxy._count("dropped_before")
            return

    async def _one_shot(self, request):
        """Send ``request`` on a connection of its own and wait for the start of the answer (then discard it)."""
        try:
            reader, writer = await self.proxy._open_upstream()
            writer.write(request.with_close())
            await writer.drain()
            await asyncio.wait_for(reader.read(1), timeout=30)
            writer.transport.abort()
        except (OSError, asyncio.TimeoutError, ConnectionError):
            pass


def main(argv=None):
    import argparse  # pylint: disable=import-outside-toplevel

    parser = argparse.ArgumentParser(prog="faultproxy", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--upstream", required=True, help="the API server URL, e.g. https://127.0.0.1:16443")
    parser.add_argument("--port", type=int, default=19480)
    parser.add_argument("--ca-file", help="CA bundle for the upstream (default: not verified, loopback only)")
    parser.add_argument("--latency", type=float, default=0.0, help="mean seconds added before each request")
    parser.add_argument("--jitter", type=float, default=0.0)
    parser.add_argument("--drop", type=float, default=0.0, help="probability of dropping a request's connection")
    args = parser.parse_args(argv)
    proxy = FaultProxy(args.upstream, port=args.port, ca_file=args.ca_file).start()
    proxy.latency(args.latency, args.jitter)
    proxy.drop(args.drop)
    print("faultproxy on %s -> %s" % (proxy.url, args.upstream), flush=True)
    try:
        while True:
            time.sleep(60)
            print(json.dumps(proxy.stats), flush=True)
    except KeyboardInterrupt:
        proxy.stop()
