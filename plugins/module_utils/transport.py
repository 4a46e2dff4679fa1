# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Requests that got no HTTP answer: which exceptions they are, and one line that says what happened.

``TRANSPORT_ERRORS`` are the exceptions of a request that never got an answer (urllib3's, the OS's).
``unreachable_message(host, exc)`` is ``cannot reach the Kubernetes API at https://127.0.0.1:6443: connection
refused``: the server URL (the ``ApiClient`` configuration's ``host``) and the cause found in urllib3's chain
(``MaxRetryError`` -> ``NewConnectionError`` -> ``ConnectionRefusedError``), not urllib3's pool repr.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
import ssl

try:
    from urllib3.exceptions import HTTPError as _Urllib3Error
except ImportError:  # pragma: no cover - urllib3 comes with kubernetes
    class _Urllib3Error(Exception):
        """Stand-in when urllib3 cannot be imported."""

TRANSPORT_ERRORS = (_Urllib3Error, OSError)


def transport_cause(exc):
    """A short cause: ``connection refused``, ``timed out``, ``cannot resolve the host name: ...``, ``TLS error: ...``.

    Otherwise the message of the innermost exception of the chain (``reason``, ``__cause__``, ``__context__``).
    """
    seen = set()
    current, last = exc, exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        last = current
        if isinstance(current, ssl.SSLCertVerificationError):
            return "TLS error: %s" % (current.verify_message or current)
        if isinstance(current, ssl.SSLError):
            return "TLS error: %s" % (getattr(current, "reason", None) or current)
        if isinstance(current, socket.gaierror):
            return "cannot resolve the host name: %s" % (current.strerror or current)
        if isinstance(current, TimeoutError):
            return "timed out"
        if isinstance(current, OSError) and current.errno:
            return os.strerror(current.errno).lower()
        reason = getattr(current, "reason", None)
        current = reason if isinstance(reason, BaseException) else (current.__cause__ or current.__context__)
    return str(last) or type(last).__name__


def unreachable_message(host, exc):
    """``cannot reach the Kubernetes API at <host>: <transport_cause(exc)>``, one line."""
    cause = " ".join(transport_cause(exc).split())
    return "cannot reach the Kubernetes API at %s: %s" % (host or "(no host configured)", cause)
