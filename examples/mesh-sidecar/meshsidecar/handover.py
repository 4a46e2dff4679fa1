"""Control-socket primitives: JSON messages over ``AF_UNIX``/``SOCK_SEQPACKET`` and fd passing.

Contracts:

* One message = one SEQPACKET record = one UTF-8 JSON object with ``"type"`` and ``"proto": 1``,
  at most :data:`MAX_MSG` bytes. A zero-length record means the peer closed (EOF).
* File descriptors travel in ``SCM_RIGHTS`` on the record that carries the ``LISTENERS`` message,
  so there is always at least one data byte with them (Linux drops fds sent with no data).
* Received fds are close-on-exec (``MSG_CMSG_CLOEXEC``; ``socket.recv_fds`` ignores its flags),
  and truncated control data (``MSG_CTRUNC``) is an error: every fd received is then closed.
* Every accepted or dialled control connection is checked with ``SO_PEERCRED``: the peer's uid
  must equal ours, otherwise the connection is closed.
* A process creates and unlinks only its own socket file (``ctl-<own version>.sock``), mode 0600.
* Nothing here ever calls ``shutdown()``, ``setblocking(True)`` or ``settimeout()`` on a listening
  socket received from the peer: those act on the shared socket / open file description.
"""

from __future__ import annotations

import array
import asyncio
import errno
import json
import os
import socket
import struct
from typing import Iterable, List, Optional, Sequence, Tuple

PROTO = 1
MAX_MSG = 65536
MAX_FDS = 16

# message types
HELLO = "HELLO"
LISTENERS = "LISTENERS"
REFUSE = "REFUSE"
READY = "READY"
DRAINING = "DRAINING"
DONE = "DONE"
ABORT = "ABORT"
STATUS = "STATUS"
STATUS_REPLY = "STATUS_REPLY"


class ProtocolError(Exception):
    """A malformed, oversized or unexpected control message, or fds that do not validate."""


def encode(msg_type: str, **fields) -> bytes:
    """Serialise one message; raises :class:`ProtocolError` if it exceeds :data:`MAX_MSG`."""
    body = dict(fields)
    body["type"] = msg_type
    body["proto"] = PROTO
    data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    if len(data) > MAX_MSG:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_MSG}")
    return data


def decode(data: bytes) -> dict:
    """Parse one message; raises :class:`ProtocolError` unless it is a JSON object of protocol 1 with a type."""
    try:
        msg = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("not a JSON object with a type")
    if msg.get("proto") != PROTO:
        raise ProtocolError(f"protocol {msg.get('proto')!r} is not {PROTO}")
    return msg


def peer_uid(sock: socket.socket) -> int:
    """uid of the process on the other end of a connected Unix socket (``SO_PEERCRED``)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def check_peer(sock: socket.socket) -> None:
    """Raise :class:`PermissionError` unless the peer runs under our own uid."""
    uid = peer_uid(sock)
    if uid != os.getuid():
        raise PermissionError(f"control peer uid {uid} is not {os.getuid()}")


def _socket_alive(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.settimeout(0.5)
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def bind_control(path: str) -> socket.socket:
    """Create the listening control socket at ``path`` (mode 0600, non-blocking).

    ``path`` must be this process's own name. A leftover file of that name from a previous
    instance is unlinked, unless something still answers on it (then ``FileExistsError``).
    The directory is created with mode 0700 when missing.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.path.exists(path):
        if _socket_alive(path):
            raise FileExistsError(f"{path} is served by a live process")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old_umask = os.umask(0o177)  # single-threaded here: no window with a wider mode
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(8)
    sock.setblocking(False)
    return sock


def connect_control(path: str, timeout: float = 2.0) -> socket.socket:
    """Dial a control socket, check the peer uid, and return it non-blocking.

    Raises ``FileNotFoundError`` / ``ConnectionRefusedError`` when nobody serves ``path``.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        check_peer(sock)
        sock.setblocking(False)
        return sock
    except BaseException:
        sock.close()
        raise


async def _wait_io(sock: socket.socket, writable: bool) -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    fd = sock.fileno()
    if writable:
        loop.add_writer(fd, ready)
    else:
        loop.add_reader(fd, ready)
    try:
        await fut
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def send_msg(sock: socket.socket, data: bytes, fds: Sequence[int] = ()) -> None:
    """Send one encoded message (``data`` non-empty) with optional fds in ``SCM_RIGHTS``."""
    if not data:
        raise ProtocolError("refusing to send an empty record (fds would be dropped)")
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    while True:
        try:
            sent = sock.sendmsg([data], anc)
        except (BlockingIOError, InterruptedError):
            await _wait_io(sock, writable=True)
            continue
        if sent != len(data):  # SEQPACKET is all-or-nothing; anything else is a kernel surprise
            raise ProtocolError(f"short send {sent}/{len(data)}")
        return


def _take_fds(anc: Iterable[Tuple[int, int, bytes]]) -> List[int]:
    fds: List[int] = []
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(array.array("i", payload[:usable]))
    return fds


def close_fds(fds: Iterable[int]) -> None:
    """Close raw fds, ignoring ones already closed."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


async def recv_msg(sock: socket.socket, timeout: Optional[float] = None) -> Tuple[Optional[dict], List[int]]:
    """Receive one message and the fds sent with it.

    Returns ``(None, [])`` on EOF. Raises ``asyncio.TimeoutError`` after ``timeout`` seconds and
    :class:`ProtocolError` on truncation or bad JSON; received fds are closed before raising.
    """

    async def once() -> Tuple[Optional[dict], List[int]]:
        while True:
            try:
                data, anc, flags, _addr = sock.recvmsg(MAX_MSG, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC)
            except (BlockingIOError, InterruptedError):
                await _wait_io(sock, writable=False)
                continue
            except ConnectionResetError:
                return None, []
            fds = _take_fds(anc)
            if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
                close_fds(fds)
                raise ProtocolError("control message truncated")
            if not data:
                close_fds(fds)
                return None, []
            try:
                return decode(data), fds
            except ProtocolError:
                close_fds(fds)
                raise

    if timeout is None:
        return await once()
    return await asyncio.wait_for(once(), timeout)


def adopt_listeners(fds: Sequence[int], descriptors: Sequence[dict], host: str, port: int) -> List[socket.socket]:
    """Wrap received fds as listening sockets after validating them against the config.

    Each fd must be a TCP socket in the listening state (``SO_ACCEPTCONN``) whose local address
    matches ``host`` and, unless ``port`` is 0, ``port``; ``descriptors`` must list the same number
    of entries. On any mismatch every fd is closed and :class:`ProtocolError` raised. The sockets
    are returned as they are: their blocking mode is shared with the peer and is not touched.
    """
    if len(fds) != len(descriptors) or not fds:
        close_fds(fds)
        raise ProtocolError(f"{len(fds)} fds for {len(descriptors)} listeners")
    socks: List[socket.socket] = []
    try:
        for fd in fds:
            sock = socket.socket(fileno=fd)
            socks.append(sock)
            if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
                raise ProtocolError("fd is not a TCP socket")
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                raise ProtocolError("fd is not listening")
            got_host, got_port = sock.getsockname()[:2]
            if got_host != host or (port and got_port != port):
                raise ProtocolError(f"listener {got_host}:{got_port} does not match config {host}:{port}")
        return socks
    except BaseException:
        for sock in socks:
            sock.detach()
        close_fds(fds)
        raise


def bind_listener(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """Bind a fresh TCP listener with ``SO_REUSEADDR`` (never ``SO_REUSEPORT``), non-blocking.

    Raises ``OSError(EADDRINUSE)`` while someone else listens on the address.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
        return sock
    except BaseException:
        sock.close()
        raise


def is_absent_error(exc: BaseException) -> bool:
    """True when dialling a control socket failed because nobody serves it (missing file or refused)."""
    return isinstance(exc, (FileNotFoundError, ConnectionRefusedError)) or (
        isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ECONNREFUSED)
    )
