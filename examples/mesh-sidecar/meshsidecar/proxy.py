"""HTTP/1.1 reverse proxy for one downstream connection, plus a small upstream connection pool.

Contract of :func:`serve_connection`:

* Requests are read one at a time (no pipelining), forwarded to the upstream with hop-by-hop
  headers removed, and the response is streamed back. Bodies framed by ``Content-Length`` or
  ``Transfer-Encoding: chunked`` are relayed in both directions; a response delimited by the
  upstream closing is relayed and then the downstream connection is closed too.
* Every response, including the proxy's own 400/502/504, carries ``x-sidecar-version`` (the
  process's ``SIDECARSET_VERSION``) and ``x-sidecar-build`` (``MESH_SIDECAR_BUILD``).
* The response gets ``Connection: close`` when the client asked for it, the request was
  HTTP/1.0, the body is close-delimited, or the tracker is draining; after such a response the
  connection is closed in stages (:func:`drain.staged_close`).
* The proxy never retries a request on behalf of the client, except once on a fresh upstream
  connection when a *pooled* upstream connection turned out to be dead before any response byte
  and the request has no body (a safe retry per RFC 9112 section 9.3.1).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import List, Optional, Tuple

from meshsidecar.drain import Conn, ConnTracker, staged_close

HEAD_LIMIT = 65536
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
REASONS = {400: "Bad Request", 502: "Bad Gateway", 504: "Gateway Timeout"}

Headers = List[Tuple[str, str]]


class HttpError(Exception):
    """Malformed HTTP message; ``status`` is what to answer downstream."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class UpstreamError(Exception):
    """The upstream failed; ``status`` is 502 or 504 and ``safe_retry`` tells whether a retry is safe."""

    def __init__(self, message: str, status: int = 502, safe_retry: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.safe_retry = safe_retry


@dataclass(frozen=True)
class ProxyContext:
    """Everything a connection handler needs, shared by all connections of one process."""

    tracker: ConnTracker
    pool: "UpstreamPool"
    version: int
    build: str
    idle_seconds: float
    upstream_timeout: float


def parse_head(raw: bytes) -> Tuple[List[str], Headers]:
    """Split a message head (ending in CRLFCRLF) into the 3-part start line and ``(name, value)`` headers."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
        raise HttpError("undecodable head") from None
    lines = text.split("\r\n")
    start = lines[0].split(" ", 2)
    if len(start) < 2:
        raise HttpError(f"bad start line {lines[0]!r}")
    while len(start) < 3:
        start.append("")
    headers: Headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(f"bad header line {line!r}")
        headers.append((name, value.strip()))
    return start, headers


def header(headers: Headers, name: str) -> Optional[str]:
    """Last value of header ``name`` (case-insensitive), or ``None``."""
    lname = name.lower()
    found = None
    for key, value in headers:
        if key.lower() == lname:
            found = value
    return found


def connection_tokens(headers: Headers) -> List[str]:
    """Lower-cased tokens of every ``Connection`` header."""
    tokens: List[str] = []
    for key, value in headers:
        if key.lower() == "connection":
            tokens.extend(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def end_to_end(headers: Headers) -> Headers:
    """Headers minus hop-by-hop ones (including those named in ``Connection``)."""
    drop = HOP_BY_HOP | set(connection_tokens(headers))
    return [(k, v) for k, v in headers if k.lower() not in drop]


def body_framing(headers: Headers) -> Tuple[str, int]:
    """``("chunked", 0)``, ``("length", n)`` or ``("none", 0)`` for a request-style message."""
    te = header(headers, "transfer-encoding")
    if te is not None:
        if te.lower().split(",")[-1].strip() != "chunked":
            raise HttpError(f"unsupported transfer-encoding {te!r}")
        return "chunked", 0
    cl = header(headers, "content-length")
    if cl is None:
        return "none", 0
    if not cl.isdigit():
        raise HttpError(f"bad content-length {cl!r}")
    return "length", int(cl)


def response_framing(method: str, status: int, headers: Headers) -> Tuple[str, int]:
    """Like :func:`body_framing`, plus ``("close", 0)`` for bodies delimited by the upstream closing."""
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return "none", 0
    kind, length = body_framing(headers)
    if kind == "none":
        return "close", 0
    return kind, length


async def read_head(reader: asyncio.StreamReader) -> Optional[bytes]:
    """Read one message head; ``None`` on a clean EOF before any byte. Raises :class:`HttpError` if too long."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    except asyncio.LimitOverrunError:
        raise HttpError("head too large") from None


async def relay_body(kind: str, length: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one body of framing ``kind`` from ``reader`` to ``writer`` (chunked is copied verbatim)."""
    if kind == "length":
        remaining = length
        while remaining:
            chunk = await reader.read(min(remaining, 65536))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            writer.write(chunk)
            remaining -= len(chunk)
            await writer.drain()
    elif kind == "chunked":
        while True:
            line = await reader.readuntil(b"\r\n")
            writer.write(line)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, then the final empty line
                    trailer = await reader.readuntil(b"\r\n")
                    writer.write(trailer)
                    if trailer == b"\r\n":
                        break
                break
            writer.write(await reader.readexactly(size + 2))
            await writer.drain()
    elif kind == "close":
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
    await writer.drain()


def build_head(start: str, headers: Headers) -> bytes:
    return (start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode("latin-1")


class UpstreamPool:
    """Keep-alive connections to one upstream ``host:port``; LIFO, at most ``max_idle`` idle ones."""

    def __init__(self, host: str, port: int, max_idle: int = 64, connect_timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self.connect_timeout = connect_timeout
        self._idle: List[Tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.closed = False

    async def acquire(self, fresh: bool = False) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """Return ``(reader, writer, reused)``; raises :class:`UpstreamError` (502) when the upstream is unreachable."""
        while self._idle and not fresh:
            reader, writer = self._idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
                continue
            return reader, writer, True
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=HEAD_LIMIT)
        except (OSError, asyncio.TimeoutError) as exc:
            raise UpstreamError(f"connect {self.host}:{self.port}: {exc!r}") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer, False

    def release(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reusable: bool) -> None:
        """Give a connection back (kept if ``reusable`` and there is room), or close it."""
        if reusable and not self.closed and len(self._idle) < self.max_idle and not writer.is_closing():
            self._idle.append((reader, writer))
        else:
            writer.close()

    def close(self) -> None:
        """Close every idle connection; later releases close instead of pooling."""
        self.closed = True
        while self._idle:
            self._idle.pop()[1].close()


def _response_headers(ctx: ProxyContext, headers: Headers, close: bool, chunked: bool) -> Headers:
    out = [(k, v) for k, v in headers if k.lower() not in ("x-sidecar-version", "x-sidecar-build")]
    if chunked:
        out.append(("Transfer-Encoding", "chunked"))
    out.append(("x-sidecar-version", str(ctx.version)))
    out.append(("x-sidecar-build", ctx.build))
    out.append(("Connection", "close" if close else "keep-alive"))
    return out


async def _send_error(ctx: ProxyContext, writer: asyncio.StreamWriter, status: int, close: bool) -> None:
    body = f"{status} {REASONS.get(status, 'Error')}\n".encode()
    headers = _response_headers(ctx, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))], close, False)
    writer.write(build_head(f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}", headers) + body)
    await writer.drain()


async def _exchange(
    ctx: ProxyContext,
    method: str,
    head: bytes,
    req_kind: str,
    req_len: int,
    reader: asyncio.StreamReader,
    fresh: bool,
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter, int, List[str], Headers]:
    """Send one request upstream and read the final response head (1xx interim responses are skipped)."""
    up_r, up_w, reused = await ctx.pool.acquire(fresh=fresh)
    got_bytes = False
    try:
        up_w.write(head)
        await relay_body(req_kind, req_len, reader, up_w)
        async with asyncio.timeout(ctx.upstream_timeout):
            while True:
                raw = await read_head(up_r)
                if raw is None:
                    raise ConnectionResetError("upstream closed before responding")
                got_bytes = True
                start, headers = parse_head(raw)
                status = int(start[1])
                if not 100 <= status < 200 or status == 101:
                    return up_r, up_w, status, start, headers
    except asyncio.TimeoutError:
        up_w.close()
        raise UpstreamError("upstream timeout", 504) from None
    except (OSError, asyncio.IncompleteReadError, HttpError, ValueError) as exc:
        up_w.close()
        safe = reused and not got_bytes and req_kind == "none"
        raise UpstreamError(f"upstream failed: {exc!r}", 502, safe_retry=safe) from None


async def serve_connection(sock: socket.socket, conn: Conn, ctx: ProxyContext) -> None:
    """Serve HTTP/1.1 requests on an accepted connection until it closes; never raises.

    ``conn`` was registered in ``ctx.tracker`` by the acceptor; it is unregistered on return.
    """
    writer: Optional[asyncio.StreamWriter] = None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader, writer = await asyncio.open_connection(sock=sock, limit=HEAD_LIMIT)
        conn.writer = writer
        while True:
            conn.busy = False
            try:
                async with asyncio.timeout(ctx.idle_seconds):
                    raw = await read_head(reader)
            except asyncio.TimeoutError:
                await staged_close(reader, writer)
                return
            if raw is None:
                return
            conn.busy = True
            try:
                start, req_headers = parse_head(raw)
                method, target, version = start
                req_kind, req_len = body_framing(req_headers)
            except HttpError as exc:
                await _send_error(ctx, writer, exc.status, close=True)
                await staged_close(reader, writer)
                return
            tokens = connection_tokens(req_headers)
            client_close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)
            fwd_headers = end_to_end(req_headers)
            if req_kind == "chunked":
                fwd_headers.append(("Transfer-Encoding", "chunked"))
            fwd_headers.append(("Connection", "keep-alive"))
            up_head = build_head(f"{method} {target} HTTP/1.1", fwd_headers)
            try:
                try:
                    up_r, up_w, status, resp_start, resp_headers = await _exchange(
                        ctx, method, up_head, req_kind, req_len, reader, fresh=False
                    )
                except UpstreamError as exc:
                    if not exc.safe_retry:
                        raise
                    up_r, up_w, status, resp_start, resp_headers = await _exchange(
                        ctx, method, up_head, req_kind, req_len, reader, fresh=True
                    )
            except UpstreamError as exc:
                close = client_close or ctx.tracker.draining
                if ctx.tracker.draining and not client_close:
                    ctx.tracker.note_inband_close()
                await _send_error(ctx, writer, exc.status, close=close)
                if close:
                    await staged_close(reader, writer)
                    return
                continue
            resp_kind, resp_len = response_framing(method, status, resp_headers)
            upstream_reusable = resp_kind != "close" and "close" not in connection_tokens(resp_headers)
            close = client_close or resp_kind == "close" or ctx.tracker.draining
            if ctx.tracker.draining and not client_close:
                ctx.tracker.note_inband_close()
            out_headers = _response_headers(ctx, end_to_end(resp_headers), close, resp_kind == "chunked")
            writer.write(build_head(f"HTTP/1.1 {status} {resp_start[2]}", out_headers))
            try:
                await relay_body(resp_kind, resp_len, up_r, writer)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                up_w.close()
                writer.transport.abort()  # a truncated body cannot be signalled otherwise
                return
            ctx.pool.release(up_r, up_w, upstream_reusable)
            if close:
                await staged_close(reader, writer)
                return
    except (OSError, asyncio.IncompleteReadError, HttpError, ValueError):
        if writer is not None:
            writer.transport.abort()
    except asyncio.CancelledError:
        if writer is not None:
            writer.transport.abort()
        raise
    finally:
        if writer is None:
            sock.close()
        elif not writer.is_closing():
            writer.close()
        ctx.tracker.unregister(conn)
