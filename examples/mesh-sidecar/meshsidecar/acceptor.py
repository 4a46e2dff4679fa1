"""Accept loop on a (possibly shared) listening socket, startable and stoppable at any instant.

Why not ``asyncio.start_server``: its accepted sockets reach user code only after a task hop,
so after "stop accepting" a connection could still be in flight inside asyncio, and cancelling a
``sock_accept`` can lose a socket the kernel already handed out. Here every ``accept()`` result is
passed to ``on_accept`` synchronously, in the reader callback.

Contract: :meth:`stop` only unregisters the fd from the event loop. It never calls
``shutdown()`` (which would break the socket for every process sharing it) and never closes it;
:meth:`close` closes this process's descriptor only.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Callable

MAX_ACCEPT_PER_WAKEUP = 64


class Acceptor:
    """Feeds connections accepted on ``sock`` to ``on_accept(conn_sock)`` while started."""

    def __init__(self, sock: socket.socket, on_accept: Callable[[socket.socket], None]) -> None:
        self.sock = sock
        self.on_accept = on_accept
        self.accepting = False
        self.accepted = 0
        self._loop = asyncio.get_running_loop()

    def start(self) -> None:
        """Begin (or resume) accepting; idempotent."""
        if not self.accepting:
            self._loop.add_reader(self.sock.fileno(), self._on_readable)
            self.accepting = True

    def stop(self) -> None:
        """Stop accepting now; the socket stays open and other holders keep accepting. Idempotent."""
        if self.accepting:
            self._loop.remove_reader(self.sock.fileno())
            self.accepting = False

    def close(self) -> None:
        """Stop and close this process's descriptor of the listener."""
        self.stop()
        self.sock.close()

    def _on_readable(self) -> None:
        for _ in range(MAX_ACCEPT_PER_WAKEUP):
            try:
                conn, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # the other process won the race, or the queue is empty
            except OSError:
                return  # e.g. EMFILE / ECONNABORTED: try again on the next wake-up
            conn.setblocking(False)
            self.accepted += 1
            self.on_accept(conn)
