# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pod and SidecarSet annotation keys and their exact Kruise formats (``pkg/webhook/pod/mutating/sidecarset.go``,
``pkg/control/sidecarcontrol/util.go``, ``util_hotupgrade.go``).

Pure functions on plain dicts; no Kubernetes I/O. Every reader accepts what OpenKruise writes,
including the legacy ``{"<name>": "<hash>"}`` form of the hash annotations.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import AnnotationError
from ansible_collections.meshops.sidecarset.plugins.module_utils.hashing import go_dumps as dumps  # Go's json.Marshal

# On the SidecarSet
SIDECARSET_HASH = "kruise.io/sidecarset-hash"
SIDECARSET_HASH_WITHOUT_IMAGE = "kruise.io/sidecarset-hash-without-image"

# On the pod
POD_HASH = "kruise.io/sidecarset-hash"
POD_HASH_WITHOUT_IMAGE = "kruise.io/sidecarset-hash-without-image"
INJECTED_LIST = "kruise.io/sidecarset-injected-list"
WORKING_HOTUPGRADE_CONTAINER = "kruise.io/sidecarset-working-hotupgrade-container"
INPLACE_UPDATE_STATE = "kruise.io/sidecarset-inplace-update-state"
VERSION_PREFIX = "version.sidecarset.kruise.io/"
VERSION_ALT_PREFIX = "versionalt.sidecarset.kruise.io/"

# Env names wired through the downward API into hot-upgrade twins
ENV_VERSION = "SIDECARSET_VERSION"
ENV_VERSION_ALT = "SIDECARSET_VERSION_ALT"
ENV_IS_INJECTED = "IS_INJECTED"

# Labels
CUSTOM_VERSION_LABEL = "apps.kruise.io/sidecarset-custom-version"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def version_key(container_name):
    """Return ``version.sidecarset.kruise.io/<container_name>``."""
    return VERSION_PREFIX + container_name


def version_alt_key(container_name):
    """Return ``versionalt.sidecarset.kruise.io/<container_name>``."""
    return VERSION_ALT_PREFIX + container_name


def hot_upgrade_names(sidecar_name):
    """Return the twin container names ``(N-1, N-2)`` of hot-upgrade sidecar ``N``."""
    return sidecar_name + "-1", sidecar_name + "-2"


def _ordered(mapping, order):
    """Return a dict whose keys follow ``order`` first, then the rest sorted (Go struct order)."""
    out = {}
    for key in order:
        if key in mapping:
            out[key] = mapping[key]
    for key in sorted(mapping):
        if key not in out:
            out[key] = mapping[key]
    return out


HASH_ENTRY_ORDER = ("updateTimestamp", "hash", "sidecarSetName", "sidecarList", "controllerRevision")
INPLACE_STATE_ORDER = ("revision", "updateTimestamp", "lastContainerStatuses")


def load_json_annotation(annotations, key):
    """Parse a JSON annotation; return ``{}`` when absent; raise ``AnnotationError`` naming the key if malformed."""
    raw = (annotations or {}).get(key)
    if raw in (None, ""):
        return {}
    if not isinstance(raw, (str, bytes, bytearray)):
        raise AnnotationError("annotation %s must be a string holding a JSON object, got %s" % (key, type(raw).__name__))
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise AnnotationError("annotation %s is not valid JSON: %s" % (key, exc))
    if not isinstance(value, dict):
        raise AnnotationError("annotation %s must hold a JSON object" % key)
    return value


def read_hash_entries(annotations, key=POD_HASH):
    """Return ``{sidecarset_name: entry_dict}`` from a pod hash annotation.

    The legacy form ``{"<name>": "<hash>"}`` is converted to ``{"hash": "<hash>", "sidecarSetName": name}``.
    """
    entries = {}
    for name, value in load_json_annotation(annotations, key).items():
        if isinstance(value, dict):
            entries[name] = value
        else:
            entries[name] = {"hash": str(value), "sidecarSetName": name}
    return entries


def write_hash_entries(entries):
    """Serialise ``{name: entry}`` in Kruise's format (map keys sorted, entry fields in Go order)."""
    ordered = {}
    for name in sorted(entries):
        entry = dict(entries[name])
        if not entry.get("controllerRevision"):
            entry.pop("controllerRevision", None)
        ordered[name] = _ordered(entry, HASH_ENTRY_ORDER)
    return dumps(ordered)


def sidecar_list(sidecarset):
    """Sorted SidecarSet container names plus native-sidecar init container names (``sidecarList``)."""
    spec = sidecarset.get("spec") or {}
    names = {c["name"] for c in spec.get("containers") or []}
    names.update(c["name"] for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always")
    return sorted(names)


def hash_entry(name, hash_value, sidecars, timestamp, revision=None):
    """The one builder of a SidecarSet's pod hash entry (``util.go:UpdatePodSidecarSetHash``): ``{updateTimestamp,
    hash, sidecarSetName, sidecarList, controllerRevision}``, the revision only when there is one."""
    entry = {"updateTimestamp": timestamp, "hash": hash_value, "sidecarSetName": name, "sidecarList": list(sidecars)}
    if revision:
        entry["controllerRevision"] = revision
    return entry


def set_or_drop(mapping, key, value):
    """Set ``mapping[key]`` to ``value``, or drop the key when ``value`` is ``None``."""
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def pod_hash(annotations, sidecarset_name, key=POD_HASH):
    """Return the hash recorded on the pod for one SidecarSet, or ``None``."""
    entry = read_hash_entries(annotations, key).get(sidecarset_name)
    return entry.get("hash") if entry else None


def read_injected_list(annotations):
    """Return the sorted SidecarSet names of ``kruise.io/sidecarset-injected-list``."""
    raw = (annotations or {}).get(INJECTED_LIST) or ""
    return sorted({name.strip() for name in raw.split(",") if name.strip()})


def write_injected_list(names):
    """Comma-join, sorted and de-duplicated."""
    return ",".join(sorted({n for n in names if n}))


def read_working(annotations):
    """Return ``{sidecar_name: working_container}`` from the working-container annotation."""
    value = load_json_annotation(annotations, WORKING_HOTUPGRADE_CONTAINER)
    return {str(k): str(v) for k, v in value.items()}


def write_working(mapping):
    """Serialise the working-container map with sorted keys (Go map marshalling)."""
    return dumps({k: mapping[k] for k in sorted(mapping)})


def read_inplace_state(annotations):
    """Return ``{sidecarset_name: {"revision", "updateTimestamp", "lastContainerStatuses"}}``."""
    return load_json_annotation(annotations, INPLACE_UPDATE_STATE)


def write_inplace_state(state):
    """Serialise the in-place update state (map keys sorted, struct fields in Go order)."""
    ordered = {}
    for name in sorted(state):
        entry = dict(state[name])
        statuses = entry.get("lastContainerStatuses") or {}
        entry["lastContainerStatuses"] = {c: statuses[c] for c in sorted(statuses)}
        ordered[name] = _ordered(entry, INPLACE_STATE_ORDER)
    return dumps(ordered)
