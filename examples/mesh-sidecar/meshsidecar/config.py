"""Runtime configuration of the sidecar, read from environment variables.

Every address, path and timeout is configurable so that several pods' worth of sidecars can run
side by side on one host (distinct ports and control directories). Contract of each variable:

=================================  ======================  ==============================================
variable                           default                 meaning
=================================  ======================  ==============================================
``MESH_SIDECAR_LISTEN``            ``127.0.0.1:15001``     data-plane listener ``host:port`` (port 0 = any)
``MESH_SIDECAR_UPSTREAM``          ``127.0.0.1:8080``      the application ``host:port``
``MESH_SIDECAR_CONTROL_DIR``       ``/run/mesh-sidecar``   shared dir for ``ctl-V.sock`` / ``status-V.json``
``MESH_SIDECAR_DRAIN_SECONDS``     ``30``                  drain deadline of the old side (and on SIGTERM)
``MESH_SIDECAR_BUILD``             ``dev``                 build label put in ``x-sidecar-build``
``MESH_SIDECAR_READY_TIMEOUT``     ``30``                  old side: wait for READY after LISTENERS
``MESH_SIDECAR_CONNECT_TIMEOUT``   ``10``                  new side: reach the old side or bind, else FAILED
``MESH_SIDECAR_IDLE_SECONDS``      ``120``                 idle keep-alive timeout (downstream)
``MESH_SIDECAR_UPSTREAM_TIMEOUT``  ``30``                  upstream response timeout (504 after it)
``MESH_SIDECAR_FAULT``             (unset)                 test only: ``pause-before-ready=SECONDS``
=================================  ======================  ==============================================

Plus ``SIDECARSET_VERSION``, ``SIDECARSET_VERSION_ALT`` and ``MESH_SIDECAR_EMPTY`` (see ``roles.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple


class ConfigError(ValueError):
    """A variable has a value that cannot be used."""


def parse_hostport(text: str, name: str = "address") -> Tuple[str, int]:
    """Parse ``host:port`` (``[v6]:port`` accepted) into ``(host, port)``; raises :class:`ConfigError`."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{name}={text!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"{name}={text!r} has a non-numeric port") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"{name}={text!r} port out of range")
    return host, number


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r} is negative")
    return value


@dataclass(frozen=True)
class Config:
    """Immutable settings of one sidecar process (see the module docstring for the variables)."""

    listen_host: str = "127.0.0.1"
    listen_port: int = 15001
    upstream_host: str = "127.0.0.1"
    upstream_port: int = 8080
    control_dir: str = "/run/mesh-sidecar"
    drain_seconds: float = 30.0
    build: str = "dev"
    ready_timeout: float = 30.0
    connect_timeout: float = 10.0
    idle_seconds: float = 120.0
    upstream_timeout: float = 30.0
    pause_before_ready: float = 0.0

    def ctl_path(self, version: int) -> str:
        """Control socket of the process whose ``SIDECARSET_VERSION`` is ``version``."""
        return os.path.join(self.control_dir, f"ctl-{version}.sock")

    def status_path(self, version: int) -> str:
        """Status snapshot of the process whose ``SIDECARSET_VERSION`` is ``version``."""
        return os.path.join(self.control_dir, f"status-{version}.json")

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Config":
        """Build a config from ``env`` (default ``os.environ``); raises :class:`ConfigError`."""
        env = os.environ if env is None else env
        lh, lp = parse_hostport(env.get("MESH_SIDECAR_LISTEN", "127.0.0.1:15001"), "MESH_SIDECAR_LISTEN")
        uh, up = parse_hostport(env.get("MESH_SIDECAR_UPSTREAM", "127.0.0.1:8080"), "MESH_SIDECAR_UPSTREAM")
        pause = 0.0
        fault = env.get("MESH_SIDECAR_FAULT", "").strip()
        if fault:
            key, dummy, value = fault.partition("=")
            if key != "pause-before-ready":
                raise ConfigError(f"MESH_SIDECAR_FAULT={fault!r}: only pause-before-ready=SECONDS is known")
            pause = _seconds({"f": value}, "f", 0.0)
        return cls(
            listen_host=lh,
            listen_port=lp,
            upstream_host=uh,
            upstream_port=up,
            control_dir=env.get("MESH_SIDECAR_CONTROL_DIR", "/run/mesh-sidecar").strip() or "/run/mesh-sidecar",
            drain_seconds=_seconds(env, "MESH_SIDECAR_DRAIN_SECONDS", 30.0),
            build=env.get("MESH_SIDECAR_BUILD", "dev").strip() or "dev",
            ready_timeout=_seconds(env, "MESH_SIDECAR_READY_TIMEOUT", 30.0),
            connect_timeout=_seconds(env, "MESH_SIDECAR_CONNECT_TIMEOUT", 10.0),
            idle_seconds=_seconds(env, "MESH_SIDECAR_IDLE_SECONDS", 120.0),
            upstream_timeout=_seconds(env, "MESH_SIDECAR_UPSTREAM_TIMEOUT", 30.0),
            pause_before_ready=pause,
        )
