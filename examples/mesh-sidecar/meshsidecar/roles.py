"""Decide what a sidecar process does from its Kruise HotUpgrade environment.

Pure logic, no I/O. Kruise resolves ``SIDECARSET_VERSION`` and ``SIDECARSET_VERSION_ALT`` from pod
annotations when the container starts; the values never change while the process runs.

Decision table (values compared as integers, never as strings):

=========================  ==============  =============================================
env                        role            behaviour
=========================  ==============  =============================================
``MESH_SIDECAR_EMPTY=1``   ``EMPTY``       empty image: idle until SIGTERM
``VERSION == 0``           ``EMPTY``       empty twin: idle until SIGTERM
``ALT`` empty or ``0``     ``FRESH``       no upgrade running: bind the listeners itself
``VERSION > ALT > 0``      ``SUCCESSOR``   newer side: take the listeners from ``ctl-ALT``
``0 < VERSION < ALT``      ``STALE``       older side restarted mid-upgrade: idle, never bind
``VERSION == ALT > 0``     error           inconsistent annotations
non-integer / negative     error           :class:`RoleError` (hook exit code 2)
=========================  ==============  =============================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Mapping, Optional

ENV_VERSION = "SIDECARSET_VERSION"
ENV_VERSION_ALT = "SIDECARSET_VERSION_ALT"
ENV_EMPTY = "MESH_SIDECAR_EMPTY"


class Role(str, enum.Enum):
    """What a process does; the value is what appears in logs and status files."""

    EMPTY = "empty"
    FRESH = "fresh"
    SUCCESSOR = "successor"
    STALE = "stale"

    @property
    def idles(self) -> bool:
        """True for roles that must never bind or take a listener and just wait for SIGTERM."""
        return self in (Role.EMPTY, Role.STALE)


class RoleError(ValueError):
    """The environment cannot be interpreted (not an integer, negative, or VERSION == ALT > 0)."""


@dataclass(frozen=True)
class Decision:
    """Outcome of :func:`decide_role`.

    ``version`` is this process's own version (names ``ctl-<version>.sock``); ``alt`` is the peer's
    version (0 when there is no peer); ``peer`` is the version whose control socket a successor
    dials, ``None`` for other roles.
    """

    role: Role
    version: int
    alt: int

    @property
    def peer(self) -> Optional[int]:
        return self.alt if self.role is Role.SUCCESSOR else None


def _parse(name: str, raw: Optional[str], empty_means_zero: bool) -> int:
    text = (raw or "").strip()
    if not text:
        if empty_means_zero:
            return 0
        raise RoleError(f"{name} is not set")
    try:
        value = int(text, 10)
    except ValueError:
        raise RoleError(f"{name}={raw!r} is not a decimal integer") from None
    if value < 0:
        raise RoleError(f"{name}={raw!r} is negative")
    return value


def _truthy(raw: Optional[str]) -> bool:
    return (raw or "").strip().lower() in ("1", "true", "yes", "on")


def decide_role(version: Optional[str], alt: Optional[str], empty_image: bool = False) -> Decision:
    """Return the :class:`Decision` for raw env strings ``version`` / ``alt``.

    ``empty_image`` (from ``MESH_SIDECAR_EMPTY``) forces :attr:`Role.EMPTY` whatever the versions
    say, so the empty image can never bind even with odd annotations. An unset ``VERSION`` is an
    error unless ``empty_image`` is set; an unset ``ALT`` means 0 (no peer).

    Raises :class:`RoleError` when the values cannot be interpreted.
    """
    if empty_image:
        v = _parse(ENV_VERSION, version, empty_means_zero=True) if (version or "").strip().isdigit() else 0
        a = _parse(ENV_VERSION_ALT, alt, empty_means_zero=True) if (alt or "").strip().isdigit() else 0
        return Decision(Role.EMPTY, v, a)
    v = _parse(ENV_VERSION, version, empty_means_zero=False)
    a = _parse(ENV_VERSION_ALT, alt, empty_means_zero=True)
    if v == 0:
        return Decision(Role.EMPTY, v, a)
    if a == 0:
        return Decision(Role.FRESH, v, a)
    if v > a:
        return Decision(Role.SUCCESSOR, v, a)
    if v < a:
        return Decision(Role.STALE, v, a)
    raise RoleError(f"{ENV_VERSION} == {ENV_VERSION_ALT} == {v}: a process cannot be its own peer")


def decide_from_env(env: Mapping[str, str]) -> Decision:
    """:func:`decide_role` applied to ``SIDECARSET_VERSION``, ``SIDECARSET_VERSION_ALT``, ``MESH_SIDECAR_EMPTY``."""
    return decide_role(env.get(ENV_VERSION), env.get(ENV_VERSION_ALT), _truthy(env.get(ENV_EMPTY)))
