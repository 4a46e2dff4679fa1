"""Pure helpers of the mesh-sidecar reference: control messages, fd passing, HTTP framing, config."""

import asyncio
import os
import socket
import stat
import sys
import tempfile

import pytest

sys.path.insert(
    0,
    os.path.join(
        os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, os.pardir, "examples", "mesh-sidecar"
    ),
)

# pylint: disable=wrong-import-position
from meshsidecar import handover as ho  # noqa: E402
from meshsidecar.config import Config, ConfigError, parse_hostport  # noqa: E402
from meshsidecar.loadgen import percentile  # noqa: E402
from meshsidecar.proxy import (  # noqa: E402
    HttpError,
    body_framing,
    end_to_end,
    parse_head,
    response_framing,
)


def test_message_round_trip():
    data = ho.encode(ho.HELLO, version=7, pid=1, want=["http"])
    msg = ho.decode(data)
    assert msg == {"type": "HELLO", "proto": 1, "version": 7, "pid": 1, "want": ["http"]}


@pytest.mark.parametrize("raw", [b"", b"[]", b"{}", b'{"type": "HELLO", "proto": 2}', b"\xff", b'{"proto": 1}'])
def test_bad_messages_rejected(raw):
    with pytest.raises(ho.ProtocolError):
        ho.decode(raw)


def test_oversized_message_rejected():
    with pytest.raises(ho.ProtocolError):
        ho.encode(ho.STATUS, blob="x" * ho.MAX_MSG)


def test_listener_fd_passing_over_seqpacket():
    """A real listening socket crosses a SEQPACKET pair and still accepts; validation checks it."""
    listener = ho.bind_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    left.setblocking(False)
    right.setblocking(False)

    async def exchange():
        await ho.send_msg(left, ho.encode(ho.LISTENERS, listeners=[{"name": "http"}]), [listener.fileno()])
        return await ho.recv_msg(right, timeout=2)

    try:
        msg, fds = asyncio.run(exchange())
        assert msg["type"] == ho.LISTENERS and len(fds) == 1
        assert not os.get_inheritable(fds[0])  # MSG_CMSG_CLOEXEC
        socks = ho.adopt_listeners(fds, msg["listeners"], "127.0.0.1", port)
        client = socket.create_connection(("127.0.0.1", port), timeout=2)
        socks[0].setblocking(True)  # safe here only because the original is no longer used
        conn, dummy = socks[0].accept()
        conn.close()
        client.close()
        socks[0].close()
    finally:
        listener.close()
        left.close()
        right.close()


def test_adopt_rejects_mismatch_and_non_listeners():
    listener = ho.bind_listener("127.0.0.1", 0)
    plain = socket.socket()
    try:
        with pytest.raises(ho.ProtocolError):
            ho.adopt_listeners([os.dup(listener.fileno())], [{}], "127.0.0.1", listener.getsockname()[1] + 1)
        with pytest.raises(ho.ProtocolError):
            ho.adopt_listeners([os.dup(plain.fileno())], [{}], "127.0.0.1", 0)
        with pytest.raises(ho.ProtocolError):
            ho.adopt_listeners([os.dup(listener.fileno())], [{}, {}], "127.0.0.1", 0)
    finally:
        listener.close()
        plain.close()


def test_eof_is_none():
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    right.setblocking(False)
    left.close()
    try:
        assert asyncio.run(ho.recv_msg(right, timeout=2)) == (None, [])
    finally:
        right.close()


def test_control_socket_mode_and_stale_file():
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = os.path.join(tmp, "ctl", "ctl-5.sock")
        sock = ho.bind_control(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with pytest.raises(FileExistsError):  # still served: not unlinked
            ho.bind_control(path)
        sock.close()  # file left behind, nobody answers: a restart may reuse its own name
        ho.bind_control(path).close()
        peer = ho.connect_control  # dialling a missing socket is an "absent" error
        with pytest.raises(OSError) as info:
            peer(os.path.join(tmp, "ctl", "ctl-9.sock"))
        assert ho.is_absent_error(info.value)


def test_parse_head_and_framing():
    start, headers = parse_head(
        b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close, X-Foo\r\nX-Foo: 1\r\n\r\n"
    )
    assert start == ["GET", "/a", "HTTP/1.1"]
    assert body_framing(headers) == ("length", 3)
    assert end_to_end(headers) == [("Host", "x"), ("Content-Length", "3")]
    assert body_framing([("Transfer-Encoding", "gzip, chunked")]) == ("chunked", 0)
    assert response_framing("HEAD", 200, [("Content-Length", "9")]) == ("none", 0)
    assert response_framing("GET", 204, []) == ("none", 0)
    assert response_framing("GET", 200, []) == ("close", 0)
    for bad in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nno colon\r\n\r\n"):
        with pytest.raises(HttpError):
            parse_head(bad)
    with pytest.raises(HttpError):
        body_framing([("Content-Length", "-1")])


def test_config_from_env():
    cfg = Config.from_env(
        {
            "MESH_SIDECAR_LISTEN": "0.0.0.0:15001",
            "MESH_SIDECAR_UPSTREAM": "[::1]:8080",
            "MESH_SIDECAR_CONTROL_DIR": "/run/x",
            "MESH_SIDECAR_DRAIN_SECONDS": "2.5",
            "MESH_SIDECAR_FAULT": "pause-before-ready=3",
        }
    )
    assert (cfg.listen_host, cfg.listen_port, cfg.upstream_host, cfg.upstream_port) == ("0.0.0.0", 15001, "::1", 8080)
    assert cfg.drain_seconds == 2.5 and cfg.pause_before_ready == 3.0
    assert cfg.ctl_path(7) == "/run/x/ctl-7.sock" and cfg.status_path(7) == "/run/x/status-7.json"
    assert Config.from_env({}).listen_port == 15001
    for bad in ({"MESH_SIDECAR_LISTEN": "nohost"}, {"MESH_SIDECAR_DRAIN_SECONDS": "-1"}, {"MESH_SIDECAR_FAULT": "x=1"}):
        with pytest.raises(ConfigError):
            Config.from_env(bad)
    with pytest.raises(ConfigError):
        parse_hostport("h:70000")


def test_percentile():
    assert percentile([], 99) == 0.0
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile(values, 100) == 100
