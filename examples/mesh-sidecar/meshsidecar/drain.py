"""Connection accounting and the drain of an HTTP/1.1 server that stopped accepting.

Contract:

* Every accepted downstream connection is registered with :meth:`ConnTracker.register` at the
  moment ``accept()`` returns (synchronously), so once accepting stops the set of connections is
  final and "zero connections" really means drained.
* While :attr:`ConnTracker.draining` is true, the proxy answers the next request on every
  connection with ``Connection: close`` and closes in stages (:func:`staged_close`). That in-band
  close is race-free for HTTP/1.1 clients; it is counted in ``inband_closes``.
* At the deadline, connections still idle are closed (``forced_closes``; racy by nature: a client
  may be sending at that instant), and connections still busy get one more ``grace`` second before
  being aborted (also ``forced_closes``).
* :meth:`ConnTracker.cancel_drain` (rollback) clears the flag: later responses keep connections
  open again.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Dict, Optional

LINGER_SECONDS = 2.0


async def staged_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, linger: float = LINGER_SECONDS
) -> None:
    """Close a connection without risking an RST that destroys the last response.

    Flush, half-close (``SHUT_WR``), read and discard until the client's EOF or ``linger``
    seconds, then close (RFC 9112 section 9.6). Never raises.
    """
    try:
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(linger):
            while await reader.read(65536):
                pass
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, RuntimeError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, RuntimeError):
            pass


@dataclass(eq=False)
class Conn:
    """One downstream connection; ``busy`` is true from the first byte of a request to the end of its response."""

    ident: int
    busy: bool = False
    writer: Optional[asyncio.StreamWriter] = None
    opened_at: float = field(default_factory=time.monotonic)


@dataclass
class DrainResult:
    """Outcome of :meth:`ConnTracker.drain`."""

    drain_ms: float
    inband_closes: int
    forced_closes: int
    remaining: int


class ConnTracker:
    """Registry of live downstream connections plus the draining flag and counters."""

    def __init__(self) -> None:
        self.conns: Dict[int, Conn] = {}
        self.draining = False
        self.inband_closes = 0
        self.forced_closes = 0
        self.total = 0
        self._ids = itertools.count(1)
        self._empty = asyncio.Event()
        self._empty.set()

    def register(self) -> Conn:
        """Record a just-accepted connection (call synchronously right after ``accept()``)."""
        conn = Conn(next(self._ids))
        self.conns[conn.ident] = conn
        self.total += 1
        self._empty.clear()
        return conn

    def unregister(self, conn: Conn) -> None:
        """Forget a connection that has been closed; idempotent."""
        self.conns.pop(conn.ident, None)
        if not self.conns:
            self._empty.set()

    def note_inband_close(self) -> None:
        """Count a response sent with ``Connection: close`` because of the drain."""
        self.inband_closes += 1

    @property
    def active(self) -> int:
        return len(self.conns)

    def cancel_drain(self) -> None:
        """Rollback: stop closing connections after their next response."""
        self.draining = False

    async def drain(self, deadline: float, grace: float = 1.0) -> DrainResult:
        """Set the draining flag and wait until no connection is left or ``deadline`` seconds pass.

        Must be called after accepting has stopped. Cancellable (rollback): the flag stays as
        set, call :meth:`cancel_drain` to clear it.
        """
        started = time.monotonic()
        self.draining = True
        inband_before = self.inband_closes
        forced_before = self.forced_closes
        try:
            await asyncio.wait_for(self._empty.wait(), deadline)
        except asyncio.TimeoutError:
            for conn in list(self.conns.values()):
                if not conn.busy and conn.writer is not None:
                    self.forced_closes += 1
                    conn.writer.close()
            try:
                await asyncio.wait_for(self._empty.wait(), grace)
            except asyncio.TimeoutError:
                for conn in list(self.conns.values()):
                    if conn.writer is not None:
                        self.forced_closes += 1
                        conn.writer.transport.abort()
                await asyncio.sleep(0)
        return DrainResult(
            drain_ms=(time.monotonic() - started) * 1000.0,
            inband_closes=self.inband_closes - inband_before,
            forced_closes=self.forced_closes - forced_before,
            remaining=self.active,
        )
