"""The ``serve`` command: one sidecar process and its hand-over state machine.

Incumbent (owns the listener; role FRESH, or a SUCCESSOR once it has taken over)::

    STARTING --bound--> SERVING
    SERVING --valid HELLO--> HANDING_OVER        send LISTENERS + fds, keep accepting
    HANDING_OVER --READY--> DRAINING             stop accepting (no shutdown()), send DRAINING
    HANDING_OVER --EOF/timeout/bad msg--> SERVING    nothing to undo: it never stopped accepting
    DRAINING --no conns or deadline--> RETIRED   send DONE, close its listener fd, idle until SIGTERM
    DRAINING --peer EOF (successor died)--> SERVING  resume accepting on the fd it kept (rollback)

Successor (``VERSION > ALT > 0``)::

    STARTING: dial ctl-ALT.sock; missing/refused -> bind if the port is free (fresh-fallback)
    HELLO -> LISTENERS + fds -> validate -> start accepting -> READY -> SERVING (handover=pending)
    DRAINING -> handover=switched;  DONE (or peer EOF after READY) -> handover=done
    REFUSE / EOF before LISTENERS -> bind when the port frees, until the connect deadline
    bad fds or protocol error before READY -> ABORT, FAILED, exit 1

Idle roles (EMPTY, STALE) never bind and never take a listener. SIGTERM: SERVING drains then
exits 0; DRAINING finishes its drain (bounded) then exits 0; RETIRED/IDLE exit 0 at once.
Exit code 1 only for FAILED.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import sys
import time
from typing import List, Optional

from meshsidecar import handover as ho
from meshsidecar import status as st
from meshsidecar.acceptor import Acceptor
from meshsidecar.config import Config
from meshsidecar.drain import ConnTracker
from meshsidecar.proxy import ProxyContext, UpstreamPool, serve_connection
from meshsidecar.roles import Decision, Role

HELLO_TIMEOUT = 5.0
BIND_RETRY = 0.05


class StartupFailed(Exception):
    """The process could not start serving (``FAILED``, exit 1)."""


def log(event: str, **fields) -> None:
    """One JSON line per event on stderr."""
    fields.update(ts=round(time.time(), 6), pid=os.getpid(), event=event)
    sys.stderr.write(json.dumps(fields, sort_keys=True) + "\n")
    sys.stderr.flush()


class Sidecar:
    """One sidecar process. Create inside a running event loop and ``await run()`` for the exit code."""

    def __init__(self, cfg: Config, decision: Decision) -> None:
        self.cfg = cfg
        self.decision = decision
        self.version = decision.version
        self.state = st.STARTING
        self.handover = "none"
        self.started_at = time.time()
        self.stopping = False
        self.figures: dict = {}
        self.error: Optional[str] = None
        self.tracker = ConnTracker()
        self.pool = UpstreamPool(cfg.upstream_host, cfg.upstream_port)
        self.ctx = ProxyContext(
            tracker=self.tracker,
            pool=self.pool,
            version=self.version,
            build=cfg.build,
            idle_seconds=cfg.idle_seconds,
            upstream_timeout=cfg.upstream_timeout,
        )
        self.acceptors: List[Acceptor] = []
        self._stop = asyncio.Event()
        self._handover_task: Optional[asyncio.Task] = None
        self._peer_task: Optional[asyncio.Task] = None
        self._conn_tasks: set = set()

    # ----------------------------------------------------------------- status / log helpers
    def _set(self, state: Optional[str] = None, handover: Optional[str] = None, **figures) -> None:
        if state is not None:
            self.state = state
        if handover is not None:
            self.handover = handover
        self.figures.update(figures)
        listen = ""
        if self.acceptors:
            host, port = self.acceptors[0].sock.getsockname()[:2]
            listen = f"{host}:{port}"
        elif "listen" in self.figures:
            listen = self.figures["listen"]
        self.figures["listen"] = listen
        try:
            st.write_status(
                self.cfg.status_path(self.version),
                state=self.state,
                handover=self.handover,
                pid=os.getpid(),
                started_at=self.started_at,
                version=self.version,
                alt=self.decision.alt,
                role=self.decision.role.value,
                build=self.cfg.build,
                active_conns=self.tracker.active,
                error=self.error,
                **self.figures,
            )
        except OSError as exc:
            log("status-write-failed", error=repr(exc))
        log("state", state=self.state, handover=self.handover, version=self.version, **self.figures)

    # ----------------------------------------------------------------- accept plumbing
    def _on_accept(self, conn_sock: socket.socket) -> None:
        conn = self.tracker.register()
        task = asyncio.get_running_loop().create_task(serve_connection(conn_sock, conn, self.ctx))
        self._conn_tasks.add(task)
        task.add_done_callback(self._conn_tasks.discard)

    def _start_accepting(self, socks: List[socket.socket]) -> None:
        for sock in socks:
            sock.setblocking(False)  # O_NONBLOCK is already set by the peer; never set blocking mode
            acceptor = Acceptor(sock, self._on_accept)
            acceptor.start()
            self.acceptors.append(acceptor)

    def _stop_accepting(self) -> None:
        for acceptor in self.acceptors:
            acceptor.stop()

    def _resume_accepting(self) -> None:
        for acceptor in self.acceptors:
            acceptor.start()

    def _close_listeners(self) -> None:
        for acceptor in self.acceptors:
            acceptor.close()
        self.acceptors = []

    # ----------------------------------------------------------------- start-up
    async def _bind_until(self, deadline: float) -> socket.socket:
        while True:
            try:
                return ho.bind_listener(self.cfg.listen_host, self.cfg.listen_port)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    raise StartupFailed(f"bind {self.cfg.listen_host}:{self.cfg.listen_port}: {exc}") from None
            await asyncio.sleep(BIND_RETRY)

    async def _start_fresh(self) -> None:
        sock = await self._bind_until(time.monotonic() + self.cfg.connect_timeout)
        self._start_accepting([sock])
        self._set(st.SERVING, "none")

    async def _start_successor(self) -> None:
        deadline = time.monotonic() + self.cfg.connect_timeout
        path = self.cfg.ctl_path(self.decision.alt)
        self._set(handover="pending")
        while True:
            try:
                ctl = ho.connect_control(path)
                break
            except OSError as exc:
                if not ho.is_absent_error(exc):
                    log("peer-connect-error", path=path, error=repr(exc))
            try:  # nobody answers: bind if the port is free (there is no incumbent)
                sock = ho.bind_listener(self.cfg.listen_host, self.cfg.listen_port)
                self._start_accepting([sock])
                self._set(st.SERVING, "fresh-fallback", fallback_reason="no incumbent")
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise StartupFailed(f"bind: {exc}") from None
            if time.monotonic() >= deadline:
                raise StartupFailed(f"no incumbent at {path} and the port stays in use")
            await asyncio.sleep(BIND_RETRY)
        t0 = time.monotonic()
        try:
            await ho.send_msg(ctl, ho.encode(ho.HELLO, version=self.version, pid=os.getpid(), want=["http"]))
            msg, fds = await ho.recv_msg(ctl, timeout=HELLO_TIMEOUT)
        except (OSError, asyncio.TimeoutError, ho.ProtocolError) as exc:
            msg, fds = None, []
            log("hello-failed", error=repr(exc))
        if msg is None or msg["type"] != ho.LISTENERS:
            ho.close_fds(fds)
            ctl.close()
            log("no-listeners", reply=msg)
            sock = await self._bind_until(deadline)
            self._start_accepting([sock])
            self._set(st.SERVING, "fresh-fallback", fallback_reason=(msg or {}).get("reason", "eof"))
            return
        try:
            socks = ho.adopt_listeners(fds, msg.get("listeners", []), self.cfg.listen_host, self.cfg.listen_port)
        except ho.ProtocolError as exc:
            await self._abort(ctl, str(exc))
            raise StartupFailed(f"listeners rejected: {exc}") from None
        received_ms = (time.monotonic() - t0) * 1000.0
        self._set(handover="pending", listeners_received_ms=round(received_ms, 3))
        if self.cfg.pause_before_ready:
            log("fault-pause-before-ready", seconds=self.cfg.pause_before_ready)
            await asyncio.sleep(self.cfg.pause_before_ready)
        self._start_accepting(socks)  # accept only right before READY
        try:
            await ho.send_msg(ctl, ho.encode(ho.READY, version=self.version, accepting=True))
        except OSError as exc:  # the incumbent vanished: we hold the listener, keep serving
            log("ready-send-failed", error=repr(exc))
        self._set(st.SERVING, "pending")
        self._peer_task = asyncio.get_running_loop().create_task(self._follow_incumbent(ctl))

    async def _abort(self, ctl: socket.socket, reason: str) -> None:
        try:
            await ho.send_msg(ctl, ho.encode(ho.ABORT, reason=reason))
        except OSError:
            pass
        ctl.close()

    async def _follow_incumbent(self, ctl: socket.socket) -> None:
        """Successor side after READY: record DRAINING / DONE from the old process."""
        try:
            while True:
                try:
                    msg, fds = await ho.recv_msg(ctl)
                except ho.ProtocolError as exc:
                    log("peer-protocol-error", error=repr(exc))
                    msg, fds = None, []
                ho.close_fds(fds)
                if msg is None:
                    if self.handover in ("pending", "switched"):
                        self._set(handover="done", peer="lost")
                    return
                if msg["type"] == ho.DRAINING:
                    self._set(handover="switched", peer_active_conns=msg.get("active_conns"))
                elif msg["type"] == ho.DONE:
                    self._set(
                        handover="done",
                        peer_drain_ms=msg.get("drain_ms"),
                        peer_inband_closes=msg.get("inband_closes"),
                        peer_forced_closes=msg.get("forced_closes"),
                    )
                    return
        finally:
            ctl.close()

    # ----------------------------------------------------------------- control server
    async def _control_server(self, ctl: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, dummy = await loop.sock_accept(ctl)
            try:
                ho.check_peer(conn)
            except (PermissionError, OSError) as exc:
                log("control-peer-rejected", error=repr(exc))
                conn.close()
                continue
            conn.setblocking(False)
            task = loop.create_task(self._control_conn(conn))
            self._conn_tasks.add(task)
            task.add_done_callback(self._conn_tasks.discard)

    def _status_reply(self) -> bytes:
        return ho.encode(
            ho.STATUS_REPLY,
            state=self.state,
            handover=self.handover,
            version=self.version,
            pid=os.getpid(),
            conns=self.tracker.active,
        )

    async def _control_conn(self, conn: socket.socket) -> None:
        try:
            try:
                msg, fds = await ho.recv_msg(conn, timeout=HELLO_TIMEOUT)
            except (asyncio.TimeoutError, ho.ProtocolError) as exc:
                log("control-bad-message", error=repr(exc))
                return
            ho.close_fds(fds)
            if msg is None:
                return
            if msg["type"] == ho.STATUS:
                await ho.send_msg(conn, self._status_reply())
            elif msg["type"] == ho.HELLO:
                if self._handover_task is not None and not self._handover_task.done():
                    await ho.send_msg(conn, ho.encode(ho.REFUSE, state=self.state, reason="busy"))
                    return
                self._handover_task = asyncio.current_task()
                await self._give_listeners(conn, msg)
            else:
                await ho.send_msg(conn, ho.encode(ho.ABORT, reason="unknown"))
        except OSError as exc:
            log("control-io-error", error=repr(exc))
        finally:
            conn.close()

    async def _give_listeners(self, conn: socket.socket, hello: dict) -> None:
        """Incumbent side of one hand-over (HELLO already received on ``conn``)."""
        peer_version = hello.get("version")
        reason = None
        if self.state != st.SERVING or self.stopping:
            reason = "not serving"
        elif self.handover in ("pending", "switched"):
            reason = "own hand-over not finished"
        elif not isinstance(peer_version, int) or peer_version <= self.version:
            reason = "version not newer"
        if reason:
            log("hello-refused", reason=reason, peer_version=peer_version)
            await ho.send_msg(conn, ho.encode(ho.REFUSE, state=self.state, reason=reason))
            return
        t_hello = time.monotonic()
        listeners = []
        fds = []
        for acceptor in self.acceptors:
            host, port = acceptor.sock.getsockname()[:2]
            family = "inet6" if acceptor.sock.family == socket.AF_INET6 else "inet"
            listeners.append({"name": "http", "family": family, "host": host, "port": port})
            fds.append(acceptor.sock.fileno())
        self._set(st.HANDING_OVER, "offered", peer_version=peer_version, peer_pid=hello.get("pid"))
        await ho.send_msg(
            conn, ho.encode(ho.LISTENERS, version=self.version, pid=os.getpid(), listeners=listeners), fds
        )
        try:
            msg, extra = await ho.recv_msg(conn, timeout=self.cfg.ready_timeout)
            ho.close_fds(extra)
        except (asyncio.TimeoutError, ho.ProtocolError) as exc:
            msg = None
            log("ready-wait-failed", error=repr(exc))
        if msg is None or msg["type"] != ho.READY or self.stopping:
            # Nothing to undo: this process never stopped accepting.
            self._set(st.SERVING, "aborted", abort_reason=(msg or {}).get("reason", "no READY"))
            return
        handover_ms = (time.monotonic() - t_hello) * 1000.0
        self._stop_accepting()
        self._set(st.DRAINING, "draining", handover_ms=round(handover_ms, 3), drain_started_at=time.time())
        await ho.send_msg(
            conn,
            ho.encode(
                ho.DRAINING,
                active_conns=self.tracker.active,
                drain_deadline_ms=int(self.cfg.drain_seconds * 1000),
            ),
        )
        loop = asyncio.get_running_loop()
        drain_task = loop.create_task(self.tracker.drain(self.cfg.drain_seconds))
        peer_task = loop.create_task(ho.recv_msg(conn))
        try:
            done, dummy = await asyncio.wait({drain_task, peer_task}, return_when=asyncio.FIRST_COMPLETED)
            if drain_task not in done and not self.stopping:
                # The successor vanished (or aborted) while we drain: take the traffic back.
                drain_task.cancel()
                await asyncio.gather(drain_task, return_exceptions=True)
                self.tracker.cancel_drain()
                self._resume_accepting()
                self._set(st.SERVING, "rolled-back", rolled_back_at=time.time())
                return
            result = await drain_task
        finally:
            peer_task.cancel()
            await asyncio.gather(peer_task, return_exceptions=True)
        self._close_listeners()
        drained_at = time.time()
        self._set(
            st.RETIRED,
            "drained",
            drain_ms=round(result.drain_ms, 3),
            inband_closes=result.inband_closes,
            forced_closes=result.forced_closes,
            drained_at=drained_at,
        )
        try:
            await ho.send_msg(
                conn,
                ho.encode(
                    ho.DONE,
                    drain_ms=round(result.drain_ms, 3),
                    inband_closes=result.inband_closes,
                    forced_closes=result.forced_closes,
                ),
            )
        except OSError:
            pass  # successor gone after the switch: nothing left to tell
        self.pool.close()

    # ----------------------------------------------------------------- main
    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; return the process exit code (0, or 1 when FAILED)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        role = self.decision.role
        if role.idles:
            if role is Role.STALE:
                self._set(st.IDLE, "none")
            else:
                log("state", state=st.IDLE, role=role.value, version=self.version)
            await self._stop.wait()
            log("exit", code=0, state=st.IDLE)
            return 0
        self._set(st.STARTING)
        ctl_path = self.cfg.ctl_path(self.version)
        try:
            ctl = ho.bind_control(ctl_path)
        except OSError as exc:
            self.error = f"control socket {ctl_path}: {exc}"
            self._set(st.FAILED)
            return 1
        ctl_task = loop.create_task(self._control_server(ctl))
        code = 0
        try:
            starter = self._start_successor() if role is Role.SUCCESSOR else self._start_fresh()
            start_task = loop.create_task(starter)
            stop_task = loop.create_task(self._stop.wait())
            await asyncio.wait({start_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            if not start_task.done():
                start_task.cancel()
                await asyncio.gather(start_task, return_exceptions=True)
                self._close_listeners()
            elif start_task.exception() is not None:
                exc = start_task.exception()
                self.error = str(exc) if isinstance(exc, StartupFailed) else repr(exc)
                self._close_listeners()
                self._set(st.FAILED)
                code = 1
            else:
                await self._stop.wait()
                await self._shutdown()
        finally:
            ctl_task.cancel()
            await asyncio.gather(ctl_task, return_exceptions=True)
            ctl.close()
            try:
                os.unlink(ctl_path)
            except OSError:
                pass
            for task in list(self._conn_tasks):
                task.cancel()
            await asyncio.gather(*self._conn_tasks, return_exceptions=True)
            self.pool.close()
        if code == 0:
            self._set(st.STOPPED)
        log("exit", code=code, state=self.state)
        return code

    def _on_signal(self, sig: int) -> None:
        log("signal", signal=signal.Signals(sig).name, state=self.state)
        self.stopping = True
        self._stop.set()

    async def _shutdown(self) -> None:
        """Graceful stop after SIGTERM, according to the state (see the module docstring)."""
        if self.state == st.DRAINING and self._handover_task is not None:
            await asyncio.gather(self._handover_task, return_exceptions=True)
        elif self.state in (st.SERVING, st.HANDING_OVER):
            if self._handover_task is not None and not self._handover_task.done():
                self._handover_task.cancel()
                await asyncio.gather(self._handover_task, return_exceptions=True)
            self._stop_accepting()
            self._set(st.STOPPING)
            result = await self.tracker.drain(self.cfg.drain_seconds)
            self._close_listeners()
            self._set(
                drain_ms=round(result.drain_ms, 3),
                inband_closes=result.inband_closes,
                forced_closes=result.forced_closes,
            )
        if self._peer_task is not None:
            self._peer_task.cancel()
            await asyncio.gather(self._peer_task, return_exceptions=True)
        self._close_listeners()


def serve(cfg: Config, decision: Decision) -> int:
    """Run one sidecar process to completion; returns its exit code."""

    async def main() -> int:
        return await Sidecar(cfg, decision).run()

    return asyncio.run(main())
