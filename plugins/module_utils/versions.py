# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The version facts of hot-upgrade twins and the timestamps written next to them: one home.

Kruise writes the SidecarSet's resourceVersion into ``version.sidecarset.kruise.io/<twin>``
(``pkg/control/sidecarcontrol/sidecarset_hotupgrade.go:updateHotUpgradeContainerInPodSpec``); here a version is an
integer greater than every version already on the pods (``highest_version + 1``). ``EMPTY_VERSION`` (``"0"``) marks
a twin on the empty image and ``FIRST_VERSION`` (``"1"``) the first injection, as Kruise's webhook writes them
(``pkg/webhook/pod/mutating/sidecarset.go``), so sidecars built for Kruise work unchanged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import VERSION_ALT_PREFIX, VERSION_PREFIX
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ParameterError

EMPTY_VERSION = "0"
FIRST_VERSION = "1"


class InvalidVersion(ParameterError):
    """The version passed to a planner is not an int greater than every version on the pod (a caller error)."""


def annotations_of(pod_or_annotations):
    """The annotations of a pod, or the dict itself when it is a dict of annotations (``ValueError`` otherwise)."""
    if not isinstance(pod_or_annotations, dict):
        raise ValueError("expected a pod or a dict of annotations")
    if isinstance(pod_or_annotations.get("metadata"), dict):
        return pod_or_annotations["metadata"].get("annotations") or {}
    return pod_or_annotations


def existing_versions(pod_or_annotations):
    """Every integer in the ``version.`` and ``versionalt.sidecarset.kruise.io/`` annotations of a pod (or of an
    annotations dict); values that are not integers are skipped."""
    versions = []
    for key, value in annotations_of(pod_or_annotations).items():
        if key.startswith(VERSION_PREFIX) or key.startswith(VERSION_ALT_PREFIX):
            try:
                versions.append(int(value))
            except (TypeError, ValueError):
                continue
    return versions


def highest_version(pods, floor=None):
    """The highest version on any of ``pods`` (pods or annotation dicts), ``floor`` and ``1`` (first injection)."""
    return max([version for pod in pods for version in existing_versions(pod)] + [int(FIRST_VERSION), int(floor or 0)])


def next_version(pods, floor=None):
    """``highest_version(pods, floor) + 1``: one version for a whole run, greater than every version it can meet."""
    return highest_version(pods, floor) + 1


def check_version(pod, version):
    """Raise ``InvalidVersion`` unless ``version`` is an int greater than every version on the pod (and than 1)."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidVersion("version must be an int, got %r" % (version,))
    highest = highest_version([pod])
    if version <= highest:
        raise InvalidVersion("version %d must be greater than every version on the pod (highest %d)" % (version, highest))


def utcnow():
    """Current UTC time (naive), the form the planners format."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def format_timestamp(now=None):
    """RFC 3339 UTC with seconds (``2021-06-04T05:44:26Z``) of ``now``: a datetime (naive means UTC), epoch
    seconds, an RFC 3339 string (kept), or ``None`` (the current time)."""
    if now is None:
        now = utcnow()
    if isinstance(now, str) and now:
        return now
    if isinstance(now, (int, float)) and not isinstance(now, bool):
        now = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    if not isinstance(now, datetime.datetime):
        raise ParameterError("now must be a datetime, epoch seconds or an RFC 3339 string, got %r" % (now,))
    if now.tzinfo is not None:
        now = now.astimezone(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")
