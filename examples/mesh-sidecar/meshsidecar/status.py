"""Status snapshot ``status-<VERSION>.json`` in the control directory.

Contract: the file is always replaced atomically (temporary file + ``os.replace``), so readers
see either the previous or the next complete JSON object, never a partial one. Fields:

``state``      STARTING | SERVING | HANDING_OVER | DRAINING | RETIRED | IDLE | STOPPING | STOPPED | FAILED
``handover``   none | pending | switched | done | fresh-fallback | aborted (successor view) and
               idle | offered | draining | drained | rolled-back (incumbent view)
``pid``, ``started_at`` (epoch seconds of process start), ``version``, ``alt``, ``build``, ``role``, ``listen`` (``host:port`` actually bound),
``handover_ms``, ``drain_ms``, ``inband_closes``, ``forced_closes``, ``drained_at`` (epoch seconds),
``updated_at`` (epoch seconds), ``error`` (text, FAILED only).
"""

from __future__ import annotations

import json
import os
import time
from typing import Optional

# states
STARTING = "STARTING"
SERVING = "SERVING"
HANDING_OVER = "HANDING_OVER"
DRAINING = "DRAINING"
RETIRED = "RETIRED"
IDLE = "IDLE"
STOPPING = "STOPPING"
STOPPED = "STOPPED"
FAILED = "FAILED"

#: states in which the readiness probe succeeds (the old or empty copy must never flip the pod).
READY_STATES = frozenset({SERVING, HANDING_OVER, DRAINING, RETIRED, IDLE})


def write_status(path: str, **fields) -> dict:
    """Atomically replace ``path`` with ``fields`` plus ``updated_at``; returns what was written."""
    body = dict(fields)
    body["updated_at"] = time.time()
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(body, handle, sort_keys=True)
    os.replace(tmp, path)
    return body


def read_status(path: str) -> Optional[dict]:
    """Return the snapshot at ``path``, or ``None`` when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie (a dead child not yet reaped counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
        return stat[stat.rindex(")") + 2 :][:1] not in ("Z", "X")
    except (OSError, ValueError):
        return True
