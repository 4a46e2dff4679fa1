"""A tiny upstream application for tests: HTTP/1.1, keep-alive, always ``200`` with a short body.

Contract: prints one JSON line ``{"event": "listening", "host": ..., "port": N}`` on stdout once
it accepts (so ``--port 0`` can be used), answers every request with 200 after ``--delay-ms``,
honours ``Connection: close``, and exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys

from meshsidecar.proxy import HttpError, body_framing, connection_tokens, parse_head, read_head, relay_body


class _Sink:
    """A writer stand-in that discards a request body."""

    def write(self, _data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            raw = await read_head(reader)
            if raw is None:
                break
            (method, target, version), headers = parse_head(raw)
            kind, length = body_framing(headers)
            await relay_body(kind, length, reader, _Sink())  # type: ignore[arg-type]
            if delay:
                await asyncio.sleep(delay)
            tokens = connection_tokens(headers)
            close = "close" in tokens or version == "HTTP/1.0"
            body = b"" if method == "HEAD" else f"hello from upstream: {method} {target}\n".encode()
            writer.write(
                (
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: {'close' if close else 'keep-alive'}\r\n\r\n"
                ).encode()
                + body
            )
            await writer.drain()
            if close:
                break
    except (OSError, asyncio.IncompleteReadError, HttpError, ValueError):
        pass
    finally:
        writer.close()


async def run_app(host: str, port: int, delay_ms: float) -> int:
    """Serve until SIGTERM/SIGINT; returns 0."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, delay_ms / 1000.0), host, port, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()
    print(json.dumps({"event": "listening", "host": bound[0], "port": bound[1]}), flush=True)
    async with server:
        await stop.wait()
    return 0


def main(host: str, port: int, delay_ms: float) -> int:
    return asyncio.run(run_app(host, port, delay_ms))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main("127.0.0.1", 8080, 0))
