# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The env values of a hot-upgrade pair, now and after the next write (logic of the ``version_pair_env`` filter).

Kruise wires ``SIDECARSET_VERSION`` and ``SIDECARSET_VERSION_ALT`` of each twin from the annotations
``version.sidecarset.kruise.io/<twin>`` and ``versionalt.sidecarset.kruise.io/<twin>`` (``pkg/webhook/pod/mutating/sidecarset_hotupgrade.go``). ``version_pair``
reads them and predicts the values ``hotupgrade.plan_next`` writes at the upgrade and at the reset.

From annotations alone the upgrade target is predicted as: the twin whose version is ``"0"`` (it runs the empty
image: rule 1 of ``findContainerToHotUpgrade``), else the standby twin (rule 3). Rule 2 (a not-ready twin) needs
container statuses and is not predicted. ``after_reset`` with nothing in flight (standby already ``"0"``) returns
the current values. Missing annotations read as ``""``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import (
    ENV_VERSION,
    ENV_VERSION_ALT,
    hot_upgrade_names,
    read_working,
    version_alt_key,
    version_key,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.podstate import working_and_empty
from ansible_collections.meshops.sidecarset.plugins.module_utils.versions import EMPTY_VERSION, annotations_of, highest_version

PHASES = ("current", "after_upgrade", "after_reset")


def _current(annotations, sidecar_name):
    read_working(annotations)  # a malformed working annotation is an error here (AnnotationError, a ValueError)
    working, standby = working_and_empty({"metadata": {"annotations": annotations}}, sidecar_name)
    values = {}
    for twin in hot_upgrade_names(sidecar_name):
        values[twin] = {
            ENV_VERSION: str(annotations.get(version_key(twin), "")),
            ENV_VERSION_ALT: str(annotations.get(version_alt_key(twin), "")),
        }
    return working, standby, values


def _upgrade_target(values, sidecar_name, standby):
    """Rule 1 (first twin recorded empty, ``N-1`` first), else rule 3 (the standby twin)."""
    for twin in hot_upgrade_names(sidecar_name):
        if values[twin][ENV_VERSION] == EMPTY_VERSION:
            return twin
    return standby


def version_pair(pod_or_annotations, sidecar_name, phase="current", new_version=None):
    """Return ``{"working", "standby", "<N-1>": {env}, "<N-2>": {env}}`` for ``phase``.

    ``after_upgrade``: target ``T`` (see module docstring) becomes working; ``v(T) = new_version``,
    ``va(T) = v(O)``, ``va(O) = new_version``. ``new_version`` defaults to one more than the highest version on
    the pod (at least 2) and must be greater than it. ``after_reset``: ``v(standby) = "0"``, ``va(working) = "0"``.
    Raises ``ValueError`` on an unknown phase, a bad ``new_version`` or a malformed working annotation.
    """
    if phase not in PHASES:
        raise ValueError("phase must be one of %s, got %r" % (", ".join(PHASES), phase))
    annotations = annotations_of(pod_or_annotations)
    working, standby, values = _current(annotations, sidecar_name)
    if phase == "after_upgrade":
        highest = highest_version([annotations])
        version = highest + 1 if new_version is None else new_version
        if isinstance(version, bool) or not isinstance(version, int) or version <= highest:
            raise ValueError("new_version must be an int greater than %d, got %r" % (highest, new_version))
        target = _upgrade_target(values, sidecar_name, standby)
        older = standby if target == working else working
        values[target] = {ENV_VERSION: str(version), ENV_VERSION_ALT: values[older][ENV_VERSION]}
        values[older] = {ENV_VERSION: values[older][ENV_VERSION], ENV_VERSION_ALT: str(version)}
        working, standby = target, older
    elif phase == "after_reset" and values[standby][ENV_VERSION] != EMPTY_VERSION:
        values[standby] = {ENV_VERSION: EMPTY_VERSION, ENV_VERSION_ALT: values[standby][ENV_VERSION_ALT]}
        values[working] = {ENV_VERSION: values[working][ENV_VERSION], ENV_VERSION_ALT: EMPTY_VERSION}
    result = {"working": working, "standby": standby}
    result.update(values)
    return result
