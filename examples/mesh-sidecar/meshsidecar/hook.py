"""Kubernetes exec hooks: ``hook post-start`` and the ``ready`` readiness check.

Both read the environment of their container (the same ``SIDECARSET_VERSION`` as the sidecar
process next to them) and only *read* state, so running them twice is harmless (hooks are
delivered at least once).

post-start exit codes:

====  ==========================================================================================
0     empty twin (``VERSION=0``) or older copy restarted mid-upgrade: immediately;
      otherwise once ``status-V.json`` says ``SERVING`` with a finished hand-over
      (``--wait switched``: handover none/fresh-fallback/switched/done; ``--wait drained``:
      none/fresh-fallback/done)
1     ``--timeout`` elapsed, the process reported ``FAILED``, or it died (its pid is gone)
2     the environment cannot be interpreted (see ``roles.py``) or the config is invalid
====  ==========================================================================================

ready exit codes: 0 for idle roles at once; otherwise 0 when the process answers ``STATUS`` on
its own ``ctl-V.sock`` with a state in :data:`status.READY_STATES` (SERVING, HANDING_OVER,
DRAINING, RETIRED, IDLE), else 1. It never probes the shared data port (which the other copy may
own by then).
"""

from __future__ import annotations

import socket
import sys
import time

from meshsidecar import handover as ho
from meshsidecar import status as st
from meshsidecar.config import Config
from meshsidecar.roles import Decision

#: a status file whose process started this long before the hook belongs to an earlier instance.
STALE_SECONDS = 5.0

SWITCHED_OK = frozenset({"none", "fresh-fallback", "switched", "done"})
DRAINED_OK = frozenset({"none", "fresh-fallback", "done"})


def _say(text: str) -> None:
    sys.stderr.write(f"meshsidecar hook: {text}\n")
    sys.stderr.flush()


def post_start(cfg: Config, decision: Decision, timeout: float, wait: str = "switched", poll: float = 0.05) -> int:
    """Block until this container's sidecar serves (see the module docstring); return the exit code."""
    if decision.role.idles:
        _say(f"role {decision.role.value}: nothing to wait for")
        return 0
    accepted = DRAINED_OK if wait == "drained" else SWITCHED_OK
    begin = time.time()
    deadline = time.monotonic() + timeout
    path = cfg.status_path(decision.version)
    last = None
    while True:
        status = st.read_status(path)
        if status is not None and status.get("started_at", 0) >= begin - STALE_SECONDS:
            last = status
            state = status.get("state")
            if state == st.SERVING and status.get("handover") in accepted:
                _say(f"serving (handover={status.get('handover')}) after {time.time() - begin:.3f}s")
                return 0
            if state == st.FAILED:
                _say(f"sidecar failed: {status.get('error')}")
                return 1
            if state in (st.STOPPING, st.STOPPED) or not st.pid_alive(int(status.get("pid", 0))):
                _say(f"sidecar pid {status.get('pid')} is gone (state {state})")
                return 1
        if time.monotonic() >= deadline:
            _say(f"timeout after {timeout}s; last status: {last}")
            return 1
        time.sleep(poll)


def query_status(path: str, timeout: float = 2.0) -> dict:
    """Send STATUS to the control socket at ``path`` and return the reply (raises ``OSError``/``ProtocolError``)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        ho.check_peer(sock)
        sock.send(ho.encode(ho.STATUS))
        data = sock.recv(ho.MAX_MSG)
        if not data:
            raise ho.ProtocolError("EOF instead of STATUS_REPLY")
        reply = ho.decode(data)
        if reply["type"] != ho.STATUS_REPLY:
            raise ho.ProtocolError(f"unexpected {reply['type']}")
        return reply
    finally:
        sock.close()


def ready(cfg: Config, decision: Decision) -> int:
    """Readiness exec check; returns the exit code (see the module docstring)."""
    if decision.role.idles:
        return 0
    try:
        reply = query_status(cfg.ctl_path(decision.version))
    except (OSError, ho.ProtocolError) as exc:
        _say(f"not ready: {exc!r}")
        return 1
    if reply.get("state") in st.READY_STATES:
        return 0
    _say(f"not ready: state {reply.get('state')}")
    return 1
