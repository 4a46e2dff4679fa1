# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions raised by the pure SidecarSet engine (loading, validation, injection, manifests).

``SidecarSetError`` carries the SidecarSet name (or ``None``), the source file (or ``None``), an optional
document index, and a list of ``(field_path, message)`` pairs; ``str()`` renders one line per error::

    SidecarSet 'mosn' (examples/sidecarsets/mosn.yaml): spec.containers[0].lifecycle.postStar: unknown field

``ManifestError`` names the manifest file, the document index (0-based, rendered ``document[N]``), the line
(1-based) when known, and the field path.

``PlanRefusal`` is how a planner says "this pod cannot be planned" (its message becomes the pod's reason);
``AnnotationError`` (a ``PlanRefusal`` and a ``ValueError``) is a pod annotation not in the format Kruise writes;
``ParameterError`` (a ``ValueError``) is a value passed to the collection (a module option, a planner argument)
that is invalid. Every error the collection raises on purpose is a ``MeshopsError``: the modules report those as
one message, anything else (a bug) with its traceback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def _where(source, document, line=None):
    """`` (source, document[N], line L)`` of the parts that are known, or ``""``."""
    where = [str(source)] if source else []
    if document is not None:
        where.append("document[%s]" % document)
    if line is not None:
        where.append("line %s" % line)
    return " (%s)" % ", ".join(where) if where else ""


def _normalise_errors(errors):
    if errors is None:
        return []
    if isinstance(errors, str):
        return [("", errors)]
    out = []
    for item in errors:
        if isinstance(item, (tuple, list)) and len(item) == 2:
            out.append((item[0] or "", str(item[1])))
        else:
            out.append(("", str(item)))
    return out


class MeshopsError(Exception):
    """Base of every error meshops.sidecarset raises on purpose (reported as one message, no traceback)."""


class PlanRefusal(MeshopsError):
    """A planner cannot plan this pod; ``str()`` is the reason reported for the pod (plan action ``refuse``).

    Planners catch this class only, so a ``ValueError`` or ``KeyError`` from a bug still crashes loudly.
    """


class AnnotationError(PlanRefusal, ValueError):
    """A pod annotation is not in the format Kruise writes (not JSON, not a JSON object).

    A ``PlanRefusal`` for the planners (the pod is refused with this message) and a ``ValueError`` for other
    readers of annotations.
    """


class ParameterError(MeshopsError, ValueError):
    """A value passed to the collection (module option, planner argument) is invalid; ``str()`` says which."""


class SidecarSetError(MeshopsError):
    """One or more problems with a SidecarSet (or with injecting it).

    ``errors`` is a list of ``(field_path, message)``; a plain string is accepted as a single error
    without a path.
    """

    def __init__(self, errors, sidecarset=None, source=None, document=None):
        self.errors = _normalise_errors(errors)
        self.sidecarset = sidecarset
        self.source = source
        self.document = document
        super(SidecarSetError, self).__init__(self.__str__())

    def prefix(self):
        """Return ``SidecarSet 'name' (source, document[N])`` without the trailing colon."""
        text = "SidecarSet"
        if self.sidecarset:
            text += " '%s'" % self.sidecarset
        return text + _where(self.source, self.document)

    def __str__(self):
        head = self.prefix()
        if not self.errors:
            return head + ": invalid"
        lines = []
        for path, message in self.errors:
            if path:
                lines.append("%s: %s: %s" % (head, path, message))
            else:
                lines.append("%s: %s" % (head, message))
        return "\n".join(lines)


class ManifestError(MeshopsError):
    """A problem with one document of a manifest file."""

    def __init__(self, message, source=None, document=None, field=None, line=None):
        self.message = str(message)
        self.source = source
        self.document = document
        self.field = field
        self.line = line
        super(ManifestError, self).__init__(self.__str__())

    def __str__(self):
        text = "manifest" + _where(self.source, self.document, self.line)
        if self.field:
            text += ": %s" % self.field
        return "%s: %s" % (text, self.message)
