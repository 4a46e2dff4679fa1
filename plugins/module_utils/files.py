# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way the collection writes a file: a temporary file beside it, renamed over it, so that a reader
never sees a partial file and a failure leaves the old file (or none) and no temporary file behind."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile


def stage(path, text, mode=0o644, durable=True):
    """Write ``text`` to a temporary file beside ``path`` (its folders made) and return its name; renaming it
    over ``path`` (``os.replace``) commits it. ``durable`` syncs it to disk first. Raises ``OSError``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        discard([tmp])
        raise
    return tmp


def discard(paths):
    """Remove the temporary files ``paths``, ignoring those already gone."""
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def write(path, text, mode=0o644, durable=True):
    """Replace ``path`` with ``text`` atomically (``stage``, then rename)."""
    os.replace(stage(path, text, mode, durable), path)
