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
ERROR_BACKOFF_SECONDS = 0.1


class Acceptor:
    """Feeds connections accepted on ``sock`` to ``on_accept(conn_sock)`` while started."""

    def __init__(self, sock: socket.socket, on_accept: Callable[[socket.socket], None]) -> None:
        self.sock = sock
        self.on_accept = on_accept
        self.accepting = False
        self.accepted = 0
        self._closed = False
        self._wanted = False
        self._loop = asyncio.get_running_loop()

    def start(self) -> None:
        """Begin (or resume) accepting; idempotent."""
        self._wanted = True
        self._register()

    def stop(self) -> None:
        """Stop accepting now; the socket stays open and other holders keep accepting. Idempotent."""
        self._wanted = False
        self._unregister()

    def close(self) -> None:
        """Stop and close this process's descriptor of the listener."""
        self.stop()
        self._closed = True
        self.sock.close()

    def _register(self) -> None:
        if not self.accepting and self._wanted and not self._closed:
            self._loop.add_reader(self.sock.fileno(), self._on_readable)
            self.accepting = True

    def _unregister(self) -> None:
        if self.accepting:
            self._loop.remove_reader(self.sock.fileno())
            self.accepting = False

    def _on_readable(self) -> None:
        for dummy in range(MAX_ACCEPT_PER_WAKEUP):
            try:
                conn, _addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # the other process won the race, or the queue is empty
            except OSError:
                # e.g. EMFILE: the queue stays readable, so back off instead of spinning
                self._unregister()
                self._loop.call_later(ERROR_BACKOFF_SECONDS, self._register)
                return
            conn.setblocking(False)
            self.accepted += 1
            self.on_accept(conn)
