# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SidecarSet revisions as Kruise keeps them: ControllerRevisions, and ``injectionStrategy.revision`` (issue 16).

Without Kruise nobody records a SidecarSet's past specs, so we record the ones we roll out, as Kruise's controller
does (``pkg/control/sidecarcontrol/history_control.go``, ``pkg/controller/sidecarset/sidecarset_processor.go``),
in a namespace the user chooses (Kruise: its own, normally ``kruise-system``); Kruise reads ours and we read
Kruise's. Pure functions on dicts; the module reads and writes the objects (``kube.py``).

* ``revision_data(sidecarset)``: the bytes of ``data``: ``{"spec":{"$patch":"replace","containers":...,
  "imagePullSecrets":...,"initContainers":...,"patchPodMetadata":...,"volumes":...}}`` (a missing one is ``null``),
  the Go JSON of the v1beta1 SidecarSet re-marshalled from a map (keys sorted at every level, HTML-escaped).
* ``new_revision(sidecarset, namespace, revision, collision_count=0)``: the ControllerRevision, named
  ``<name>-<hash>`` (``history.HashControllerRevision``: FNV-32 of data plus the collision count, decimal,
  ``SafeEncodeString``), labels = the SidecarSet's + ``kruise.io/sidecarset-name`` + ``controller.kubernetes.io/hash``
  (+ ``apps.kruise.io/sidecarset-custom-version`` from ``spec.customVersion``), annotations = the SidecarSet's (both
  hashes among them).
* ``plan_record(sidecarset, existing, namespace)``: what registering the current spec writes (Kruise's
  ``registerLatestRevision``: reuse an equal newest revision, bump an equal older one, else create ``next``).
* ``find_revision`` / ``restore`` / ``choose``: ``getSuitableRevisionSidecarSet`` for a pod being created.

Differences from Kruise (docs/kruise-parity.md): no owner reference (the SidecarSet object may not exist in the
cluster); history is not trimmed to ``revisionHistoryLimit`` (we never delete revisions); volumes are encoded as
given after our defaulting (Kruise re-encodes them through the typed ``corev1.Volume``: an explicit zero value such as
``readOnly: false`` is dropped there and kept here, which changes the name's hash, not what is injected).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import random

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import (
    CUSTOM_VERSION_LABEL,
    SIDECARSET_HASH,
    SIDECARSET_HASH_WITHOUT_IMAGE,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.hashing import (
    _encode_struct,
    go_dumps,
    go_sorted,
    safe_encode_string,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.selectors import match_label_selector
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import normalize_sidecarset

SIDECARSET_NAME_LABEL = "kruise.io/sidecarset-name"
HASH_LABEL = "controller.kubernetes.io/hash"
REVISION_FIELDS = ("containers", "imagePullSecrets", "initContainers", "patchPodMetadata", "volumes")
DEFAULT_NAMESPACE = "kruise-system"
# where attach_history keeps the historical SidecarSet on a normalised SidecarSet dict (read by inject.py)
HISTORY_KEY = "_meshopsHistory"


def revision_data(sidecarset):
    """The ``data`` bytes of the ControllerRevision of a normalised SidecarSet's current spec."""
    spec = (sidecarset or {}).get("spec") or {}
    out = {"$patch": "replace"}
    for key in REVISION_FIELDS:
        value = spec.get(key)
        if key in ("containers", "initContainers") and value:
            value = [_encode_struct(c, "SidecarContainer") for c in value]
        elif not value:
            value = None  # Go's omitempty on the typed spec, then a missing key is null
        out[key] = value
    return go_dumps(go_sorted({"spec": out})).encode("utf-8")


def fnv32(data):
    """FNV-1 32 bit (Go's ``hash/fnv.New32``, not 32a)."""
    value = 0x811C9DC5
    for byte in bytearray(data):
        value = (value * 0x01000193) & 0xFFFFFFFF
        value ^= byte
    return value


def revision_hash(data, collision_count=0):
    """``history.HashControllerRevision``: the collision count (when set) is hashed as decimal text after data."""
    if collision_count is not None:
        data = data + str(int(collision_count)).encode("ascii")
    return safe_encode_string(str(fnv32(data)))


def revision_name(sidecarset_name, hash_value):
    """``history.ControllerRevisionName``."""
    return "%s-%s" % (sidecarset_name[:223], hash_value)


def new_revision(sidecarset, namespace, revision, collision_count=0):
    """The ControllerRevision Kruise's ``NewRevision`` builds for a normalised SidecarSet."""
    metadata = sidecarset.get("metadata") or {}
    name = metadata.get("name") or ""
    data = revision_data(sidecarset)
    hash_value = revision_hash(data, collision_count)
    labels = dict(metadata.get("labels") or {})
    labels[HASH_LABEL] = hash_value
    custom = (sidecarset.get("spec") or {}).get("customVersion")
    if custom:
        labels[CUSTOM_VERSION_LABEL] = custom
    labels[SIDECARSET_NAME_LABEL] = name
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": revision_name(name, hash_value), "namespace": namespace, "labels": labels,
                     "annotations": dict(metadata.get("annotations") or {})},
        "data": json.loads(data.decode("utf-8")),
        "revision": int(revision),
    }


def _data_bytes(revision):
    data = revision.get("data")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    return go_dumps(go_sorted(data)).encode("utf-8")


def owned_revisions(revisions, sidecarset_name):
    """The ControllerRevisions labelled ``kruise.io/sidecarset-name=<name>``, oldest first (``SortControllerRevisions``:
    by ``.revision``, then creation time, then name)."""
    mine = [r for r in revisions or ()
            if ((r.get("metadata") or {}).get("labels") or {}).get(SIDECARSET_NAME_LABEL) == sidecarset_name]
    return sorted(mine, key=lambda r: (int(r.get("revision") or 0),
                                       (r.get("metadata") or {}).get("creationTimestamp") or "",
                                       (r.get("metadata") or {}).get("name") or ""))


def plan_record(sidecarset, existing, namespace, collision_count=0):
    """What registering the current spec writes: ``("none"|"create"|"bump", revision)``; the revision (its name is
    ``status.latestRevision``). An equal newest revision is reused, an equal older one gets ``next`` as its
    ``.revision`` (a rollback), otherwise a new one is created with ``next``."""
    name = (sidecarset.get("metadata") or {}).get("name") or ""
    history = owned_revisions(existing, name)
    following = (int(history[-1].get("revision") or 0) + 1) if history else 1
    fresh = new_revision(sidecarset, namespace, following, collision_count)
    data = _data_bytes(fresh)
    equal = [r for r in history if _data_bytes(r) == data]
    if equal and equal[-1] is history[-1]:
        return "none", history[-1]
    if equal:
        bumped = copy.deepcopy(equal[-1])
        bumped["revision"] = following
        return "bump", bumped
    return "create", fresh


def find_revision(sidecarset, revisions):
    """``getControllerRevision``: the revision ``injectionStrategy.revision`` names (``revisionName``), or the newest
    one labelled with its ``customVersion``; ``SidecarSetError`` when there is none (Kruise's webhook then fails the
    pod creation). ``None`` when the SidecarSet names no revision."""
    name = (sidecarset.get("metadata") or {}).get("name") or ""
    info = ((sidecarset.get("spec") or {}).get("injectionStrategy") or {}).get("revision") or {}
    if info.get("revisionName"):
        for revision in revisions or ():
            if (revision.get("metadata") or {}).get("name") == info["revisionName"]:
                return revision
        raise SidecarSetError([("spec.injectionStrategy.revision.revisionName", 'controllerrevisions.apps "%s" not '
                                "found" % info["revisionName"])], sidecarset=name)
    if info.get("customVersion"):
        matching = [r for r in owned_revisions(revisions, name)
                    if ((r.get("metadata") or {}).get("labels") or {}).get(CUSTOM_VERSION_LABEL) == info["customVersion"]]
        if not matching:
            raise SidecarSetError([("spec.injectionStrategy.revision.customVersion",
                                    'ControllerRevision.apps "%s" not found (no revision labelled %s=%s)'
                                    % (name, CUSTOM_VERSION_LABEL, info["customVersion"]))], sidecarset=name)
        return matching[-1]
    return None


def restore(sidecarset, revision):
    """``GetHistorySidecarSet``: the SidecarSet with the revision's containers, initContainers, volumes,
    imagePullSecrets and patchPodMetadata (``$patch: replace``), both hashes from the revision's annotations and
    ``status.latestRevision`` = the revision's name. Hashes missing from the revision are left to the caller
    (``sidecarset.normalize_sidecarset`` recomputes them)."""
    restored = copy.deepcopy(sidecarset)
    data = revision.get("data")
    if isinstance(data, (bytes, bytearray, str)):
        data = json.loads(data)
    spec_data = (data or {}).get("spec") or {}
    spec = restored.setdefault("spec", {})
    for key in REVISION_FIELDS:
        if spec_data.get(key) is None:
            spec.pop(key, None)
        else:
            spec[key] = copy.deepcopy(spec_data[key])
    annotations = restored.setdefault("metadata", {}).setdefault("annotations", {})
    rev_annotations = (revision.get("metadata") or {}).get("annotations") or {}
    for key in (SIDECARSET_HASH, SIDECARSET_HASH_WITHOUT_IMAGE):
        if rev_annotations.get(key):
            annotations[key] = rev_annotations[key]
        else:
            annotations.pop(key, None)
    restored.setdefault("status", {})["latestRevision"] = (revision.get("metadata") or {}).get("name")
    return restored


def _percent(partition):
    text = partition.strip()
    if not text.endswith("%"):
        raise ValueError(partition)
    return float(text[:-1]) / 100.0


def choose(sidecarset, historical, pod_labels, rand=None):
    """``getSuitableRevisionSidecarSet`` on CREATE: ``historical`` (the restored SidecarSet) or ``sidecarset``.

    The historical one when ``updateStrategy.paused``; with policy ``Partial``: when ``updateStrategy.selector`` is
    set and the pod does not match it, else with the probability of a percent ``partition`` (``rand()`` below or
    equal to it; an int or no partition: the latest); with ``Always`` (the default): the historical one.
    """
    if historical is None:
        return sidecarset
    spec = sidecarset.get("spec") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("paused"):
        return historical
    info = (spec.get("injectionStrategy") or {}).get("revision") or {}
    if info.get("policy") != "Partial":
        return historical
    selector = strategy.get("selector")
    if selector is not None and not match_label_selector(selector, pod_labels or {}):
        return historical
    partition = strategy.get("partition")
    if not isinstance(partition, str):
        return sidecarset
    draw = (rand or random.random)()
    return historical if draw <= _percent(partition) else sidecarset


def attach_history(sidecarset, historical):
    """A shallow copy of a normalised SidecarSet carrying its normalised historical SidecarSet for ``inject_pod``."""
    out = dict(sidecarset)
    out[HISTORY_KEY] = historical
    return out


def resolve(sidecarset, revisions):
    """The SidecarSet to inject with: unchanged without ``injectionStrategy.revision`` (or naming neither
    revisionName nor customVersion), else with its history attached (``restore``d, normalised, the revision's
    hashes kept). ``SidecarSetError`` when the named revision is not among ``revisions``."""
    revision = find_revision(sidecarset, revisions)
    if revision is None:
        return sidecarset
    restored = restore({k: v for k, v in sidecarset.items() if k != HISTORY_KEY}, revision)
    kept = dict((restored.get("metadata") or {}).get("annotations") or {})
    historical = normalize_sidecarset(restored, source="ControllerRevision %s"
                                      % ((revision.get("metadata") or {}).get("name")))
    for key in (SIDECARSET_HASH, SIDECARSET_HASH_WITHOUT_IMAGE):
        if kept.get(key):
            historical["metadata"]["annotations"][key] = kept[key]
    # restoreRevisionInfo names the revision unconditionally (normalisation may drop a latestRevision it finds stale)
    historical["status"] = dict(historical.get("status") or {}, latestRevision=revision["metadata"]["name"])
    return attach_history(sidecarset, historical)
