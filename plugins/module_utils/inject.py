# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inject SidecarSets into a pod or pod template, exactly as Kruise's pod webhook does
(``pkg/webhook/pod/mutating/sidecarset.go:sidecarsetMutatingPod``).

``inject_pod(pod, sidecarsets, namespace=None, namespace_labels=None, now=None) -> (new_pod, injected_names)``
works on a pod-like dict ``{"metadata": ..., "spec": ...}`` (a Pod or a workload's pod template) and never
mutates its input. The SidecarSets (normalised by ``sidecarset.normalize_sidecarset``; un-normalised ones are
normalised on the fly) are applied when they match and are not ``injectionStrategy.paused``, in Kruise's order:
those with a ``kubernetes.io/metadata.name`` namespaceSelector (Kruise's namespace index) first, then the others, by
name inside each group (``injection_order``); the annotations list them in name order.

Re-injection is idempotent and in place: containers, init containers and volumes a SidecarSet injected earlier
(recognised by the ``IS_INJECTED=true`` env plus the ``sidecarList`` of the pod's ``kruise.io/sidecarset-hash``
entry) are replaced at their positions; containers dropped from the SidecarSet are removed; the annotation
timestamps are kept when the hash did not change; HotUpgrade twins are reset to ``N-1`` working on the new image
and ``N-2`` empty, versions 1/0/0/1. A SidecarSet that is passed in, injected earlier and no longer matches (and
is not paused) is removed from the pod. App containers and containers of SidecarSets that are not passed in are
never touched. Container name clashes raise ``SidecarSetError``.

New ``BeforeAppContainer`` sidecars go in front of the first container that was not injected earlier (index 0
for a pod that has no injected sidecar yet, as in Kruise, even when the pod has a container named like another
sidecar: that one is replaced in place), ``AfterAppContainer`` ones are appended. Init containers of all SidecarSets
are stable-sorted by name before they are merged. SidecarSet volumes are added in order of first use (init
containers, then containers, each by mounts then devices); a pod volume of the same name wins.

``resourcesPolicy`` (Kruise v1.9) sets a sidecar's ``resources`` from the pod's containers and native-sidecar init
containers that no SidecarSet injected and whose names no matched SidecarSet defines (``resources.py``); a pod
with no target container is refused with ``SidecarSetError``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import json
import marshal
import re

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import (
    ENV_IS_INJECTED,
    ENV_VERSION,
    ENV_VERSION_ALT,
    INJECTED_LIST,
    NAMESPACE_NAME_LABEL,
    POD_HASH,
    POD_HASH_WITHOUT_IMAGE,
    WORKING_HOTUPGRADE_CONTAINER,
    hash_entry,
    hot_upgrade_names,
    read_hash_entries,
    read_injected_list,
    read_working,
    set_or_drop,
    sidecar_list,
    version_alt_key,
    version_key,
    write_hash_entries,
    write_injected_list,
    write_working,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.hashing import CONTAINER_FIELDS, go_dumps
from ansible_collections.meshops.sidecarset.plugins.module_utils.resources import apply_resources_policy
from ansible_collections.meshops.sidecarset.plugins.module_utils.revisions import HISTORY_KEY, choose as choose_revision
from ansible_collections.meshops.sidecarset.plugins.module_utils.selectors import (
    compile_label_selector,
    is_empty_selector,
    namespace_labels as namespace_labels_of,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import (
    AFTER,
    BEFORE,
    FIELD_REF_RE,
    clone,
    empty_image,
    get_hash,
    get_hash_without_image,
    is_hot_upgrade,
    normalize_sidecarset,
    sidecarset_name,
    to_plain,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.versions import format_timestamp

_SUBPATH_ENV_RE = re.compile(r"\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
_IS_INJECTED_ENV = {"name": ENV_IS_INJECTED, "value": "true"}


def is_injected_container(container):
    """True when the container's first ``IS_INJECTED`` env is ``true`` (Kruise's sidecar marker,
    ``IsInjectedSidecarContainerInPod``: ``GetContainerEnvValue`` reads the first env of that name)."""
    for env in container.get("env") or ():
        if env.get("name") == ENV_IS_INJECTED:
            return env.get("value") == "true"
    return False


def _version_env(twin):
    return [
        {"name": ENV_VERSION, "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                         "fieldPath": "metadata.annotations['%s']" % version_key(twin)}}},
        {"name": ENV_VERSION_ALT, "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.annotations['%s']" % version_alt_key(twin)}}},
    ]


class _Frozen(object):
    """An immutable JSON-like value that hands out fresh deep copies quickly (marshal when possible)."""

    __slots__ = ("blob", "value")

    def __init__(self, value):
        value = to_plain(value)
        try:
            self.blob = marshal.dumps(value)
            self.value = None
        except ValueError:
            self.blob = None
            self.value = value

    def get(self):
        """Return a fresh deep copy."""
        if self.blob is not None:
            return marshal.loads(self.blob)
        return clone(self.value)


def _append_new(out, items, key, seen):
    """Append to ``out`` the ``items`` whose ``key`` is not in ``seen`` yet (the first of a name or path wins)."""
    for item in items:
        if item.get(key) not in seen:
            seen.add(item.get(key))
            out.append(item)


class _Sidecar(object):
    """One SidecarSet container (or init container), precompiled."""

    def __init__(self, container, is_init, sidecarset=None):
        self.name = container["name"]
        self.sidecarset = sidecarset
        self.is_init = is_init
        self.native = is_init and container.get("restartPolicy") == "Always"
        self.policy = container.get("podInjectPolicy") or (AFTER if is_init else BEFORE)
        self.hot = is_hot_upgrade(container) and (self.native or not is_init)
        self.empty_image = empty_image(container)
        self.share_mounts = ((container.get("shareVolumePolicy") or {}).get("type") == "enabled")
        self.share_devices = ((container.get("shareVolumeDevicePolicy") or {}).get("type") == "enabled")
        self.transfer = to_plain(container.get("transferEnv") or [])
        policy = container.get("resourcesPolicy")
        self.resources_policy = {"name": self.name, "resourcesPolicy": to_plain(policy)} if policy else None
        template = {k: to_plain(v) for k, v in container.items() if k in CONTAINER_FIELDS}
        template["env"] = list(template.get("env") or []) + [dict(_IS_INJECTED_ENV)]
        self.volume_names = [m.get("name") for m in container.get("volumeMounts") or ()]
        self.volume_names += [d.get("name") for d in container.get("volumeDevices") or ()]
        self.dynamic = bool(self.share_mounts or self.share_devices or self.transfer or self.resources_policy)
        self.own_mount_paths = {m.get("mountPath") for m in template.get("volumeMounts") or ()}
        self.own_mount_paths.update(d.get("devicePath") for d in template.get("volumeDevices") or ())
        # one (frozen container, frozen version env) per pod container: N, or N-1 then N-2
        self.parts = []
        if self.hot:
            for twin in hot_upgrade_names(self.name):
                part = dict(template, name=twin)
                if twin.endswith("-2"):
                    part["image"] = self.empty_image
                self.parts.append((_Frozen(part), _Frozen(_version_env(twin))))
        else:
            self.parts.append((_Frozen(template), None))
        self.names = [part.get()["name"] for part, unused_env in self.parts]
        if not self.dynamic:
            finished = []
            for part, version_env in self.parts:
                container_copy = part.get()
                if version_env:
                    container_copy["env"].extend(version_env.get())
                finished.append(container_copy)
            self.static = _Frozen(finished)
        else:
            self.static = None

    def build(self, context):
        """Return the pod containers for this sidecar (fresh objects)."""
        if self.static is not None:
            return self.static.get()
        extra_env = []
        base = self.parts[0][0].get()
        env_names = {e.get("name") for e in base["env"]}
        if self.transfer:
            _append_new(extra_env, context.transfer_envs(self.transfer), "name", env_names)
        extra_mounts = []
        if self.share_mounts:
            mounts, subpath_env = context.shared_mounts()
            _append_new(extra_mounts, mounts, "mountPath", set(self.own_mount_paths))
            _append_new(extra_env, subpath_env, "name", env_names)
        extra_devices = []
        if self.share_devices:
            _append_new(extra_devices, context.shared_devices(), "devicePath", set(self.own_mount_paths))
        resources = None
        if self.resources_policy:
            # applyResourcesPolicy: computed before the HotUpgrade split, so both twins get the same resources
            resources = apply_resources_policy(context.target_spec(), self.resources_policy, context.excluded,
                                               sidecarset=self.sidecarset)
        out = []
        for position, (part, version_env) in enumerate(self.parts):
            container = base if position == 0 else part.get()
            if resources is not None:
                container["resources"] = clone(resources)
            if extra_env:
                container["env"].extend([clone(var) if "valueFrom" in var else dict(var) for var in extra_env])
            if version_env:
                container["env"].extend(version_env.get())
            if extra_mounts:
                container["volumeMounts"] = (container.get("volumeMounts") or []) + [dict(m) for m in extra_mounts]
            if extra_devices:
                container["volumeDevices"] = (container.get("volumeDevices") or []) + [clone(d) for d in extra_devices]
            out.append(container)
        return out


class CompiledSidecarSet(object):
    """A normalised SidecarSet prepared for fast repeated injection."""

    def __init__(self, sidecarset):
        self.source = sidecarset
        self.name = sidecarset_name(sidecarset)
        self.hash = get_hash(sidecarset)
        self.hash_without_image = get_hash_without_image(sidecarset)
        self.revision = ((sidecarset.get("status") or {}).get("latestRevision")) or ""
        spec = sidecarset.get("spec") or {}
        self.paused = bool((spec.get("injectionStrategy") or {}).get("paused"))
        # injectionStrategy.revision: the historical SidecarSet the caller resolved (revisions.attach_history)
        history = sidecarset.get(HISTORY_KEY)
        self.history = CompiledSidecarSet(history) if isinstance(history, dict) else None
        selector = spec.get("selector")
        self.select = (lambda labels: False) if is_empty_selector(selector) else compile_label_selector(selector)
        ns_selector = spec.get("namespaceSelector")
        self.select_namespace = None if ns_selector is None else compile_label_selector(ns_selector)
        self.namespace_indexed = namespace_indexed(ns_selector)
        self.init = [_Sidecar(c, True, self.name) for c in spec.get("initContainers") or ()]
        self.containers = [_Sidecar(c, False, self.name) for c in spec.get("containers") or ()]
        self.volumes = {v["name"]: _Frozen(v) for v in spec.get("volumes") or ()}
        self.secrets = to_plain(spec.get("imagePullSecrets") or [])
        self.patches = to_plain(spec.get("patchPodMetadata") or [])
        self.sidecar_list = sidecar_list(sidecarset)
        self.hot = [s for s in self.init + self.containers if s.hot]
        self.produced = {}
        for sidecar in self.init + self.containers:
            for pod_name in sidecar.names:
                self.produced[pod_name] = sidecar
        self.init_names = {n for s in self.init for n in s.names}
        # buildSidecars collects the volumes in order of first use: init containers, then containers, each by its
        # volumeMounts then its volumeDevices (util.MergeVolumes keeps the first of a name)
        self.needed_volumes = []
        for sidecar in self.init + self.containers:
            for vol_name in sidecar.volume_names:
                if vol_name in self.volumes and vol_name not in self.needed_volumes:
                    self.needed_volumes.append(vol_name)
        self._entry_json = {}
        self.fresh_versions = {}
        for sidecar in self.hot:
            first, second = hot_upgrade_names(sidecar.name)
            self.fresh_versions[version_key(first)] = "1"
            self.fresh_versions[version_alt_key(first)] = "0"
            self.fresh_versions[version_key(second)] = "0"
            self.fresh_versions[version_alt_key(second)] = "1"

    def entry(self, timestamp, without_image, old=None):
        """This SidecarSet's pod hash (or hash-without-image) entry; the ``old`` entry of the same hash keeps its
        timestamp and revision."""
        hash_value = self.hash_without_image if without_image else self.hash
        revision = None if without_image else self.revision
        if old is not None and old.get("hash") == hash_value and old.get("updateTimestamp"):
            timestamp = old["updateTimestamp"]
            if not without_image:
                # the entry stays as it is, so that starting to record revisions (revision_namespace) does not rewrite
                # every template injected earlier (and roll its pods) only to add the revision's name
                revision = old.get("controllerRevision")
        return hash_entry(self.name, hash_value, self.sidecar_list, timestamp, revision)

    def entry_json(self, timestamp, without_image):
        """The JSON text of this SidecarSet's fresh pod hash entry (``write_hash_entries`` format, one entry)."""
        key = (timestamp, without_image)
        text = self._entry_json.get(key)
        if text is None:
            text = write_hash_entries({self.name: self.entry(timestamp, without_image)})[1:-1]
            if len(self._entry_json) > 64:
                self._entry_json.clear()
            self._entry_json[key] = text
        return text

    def matches(self, labels, namespace_labels):
        """PodMatchedSidecarSet (the ``paused`` flag is checked by the caller)."""
        if self.select_namespace is not None and not self.select_namespace(namespace_labels):
            return False
        return self.select(labels)


def namespace_indexed(ns_selector):
    """True when Kruise's webhook finds this SidecarSet under the pod's namespace rather than among the cluster-wide
    ones (``IndexSidecarSetV1Beta1``, pkg/util/fieldindex/register.go): a namespaceSelector with a
    ``kubernetes.io/metadata.name`` matchLabel, or a matchExpression ``kubernetes.io/metadata.name In [...]``."""
    if not isinstance(ns_selector, dict):
        return False
    if NAMESPACE_NAME_LABEL in (ns_selector.get("matchLabels") or {}):
        return True
    return any(isinstance(e, dict) and e.get("key") == NAMESPACE_NAME_LABEL and e.get("operator") == "In"
               for e in ns_selector.get("matchExpressions") or ())


def injection_order(matched):
    """The order in which Kruise's webhook builds the matched SidecarSets: those indexed under the pod's namespace
    first, then the cluster-wide ones (``sidecarsetMutatingPod`` lists the two indexes in that order); by name
    inside each (Kruise: its cache's order, not guaranteed). Annotations stay in name order (Go sorts map keys)."""
    return [c for c in matched if c.namespace_indexed] + [c for c in matched if not c.namespace_indexed]


_CACHE = {}


def compile_sidecarset(sidecarset):
    """Return the (cached) ``CompiledSidecarSet`` of a SidecarSet dict; normalises it first when needed."""
    if isinstance(sidecarset, CompiledSidecarSet):
        return sidecarset
    key = id(sidecarset)
    cached = _CACHE.get(key)
    if cached is not None and cached.source is sidecarset and cached.hash == get_hash(sidecarset):
        return cached
    source = sidecarset
    if not get_hash(sidecarset) or not get_hash_without_image(sidecarset):
        sidecarset = normalize_sidecarset(sidecarset)
    compiled = CompiledSidecarSet(sidecarset)
    compiled.source = source
    if len(_CACHE) > 512:
        _CACHE.clear()
    _CACHE[key] = compiled
    return compiled


_LIST_CACHE = {}
_FRESH_WORKING = {}


def compile_sidecarsets(sidecarsets):
    """Compile a list of SidecarSets, sorted by name; duplicate names raise ``SidecarSetError``."""
    items = list(sidecarsets or ())
    key = tuple(id(s) for s in items)
    cached = _LIST_CACHE.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], items)):
        if all(c.source is s and c.hash == get_hash(s) for c, s in zip(cached[2], items)
               if not isinstance(s, CompiledSidecarSet)):
            return cached[1]
    compiled_items = [compile_sidecarset(s) for s in items]
    compiled = sorted(compiled_items, key=lambda c: c.name or "")
    for first, second in zip(compiled, compiled[1:]):
        if first.name == second.name:
            raise SidecarSetError([("metadata.name", "SidecarSet passed twice")], sidecarset=first.name)
    if len(_LIST_CACHE) > 64:
        _LIST_CACHE.clear()
    _LIST_CACHE[key] = (items, compiled, compiled_items)
    return compiled


class _Context(object):
    """Lazily computed facts about the pod being injected (shared mounts, env map)."""

    def __init__(self, containers, metadata, apps=None, init_apps=None, excluded=None):
        self.containers = containers
        self.metadata = metadata
        self.apps = apps if apps is not None else containers
        self.init_apps = init_apps or []
        self.excluded = excluded or set()
        self._mounts = None
        self._devices = None
        self._env_map = None

    def _app_containers(self):
        return [c for c in self.containers if not is_injected_container(c)]

    def target_spec(self):
        """The pod as Kruise's ``getTargetContainers`` sees it at creation: the containers and init containers no
        SidecarSet injected (``excluded``, the names the matched SidecarSets define, are left out by the caller)."""
        return {"containers": self.apps, "initContainers": self.init_apps}

    def shared_mounts(self):
        """Mounts of the non-injected containers and the env their ``subPathExpr`` needs."""
        if self._mounts is None:
            mounts, envs = [], []
            for container in self._app_containers():
                own = {}
                for env in container.get("env") or ():
                    own.setdefault(env.get("name"), env)  # GetContainerEnvVar: the first of a name
                for mount in container.get("volumeMounts") or ():
                    mounts.append(mount)
                    for var in _SUBPATH_ENV_RE.findall(mount.get("subPathExpr") or ""):
                        if var in own:
                            envs.append(own[var])
            self._mounts = (mounts, envs)
        return self._mounts

    def shared_devices(self):
        """Volume devices of the non-injected containers."""
        if self._devices is None:
            self._devices = [d for c in self._app_containers() for d in c.get("volumeDevices") or ()]
        return self._devices

    def transfer_envs(self, entries):
        """``GetSidecarTransferEnvs``: env vars copied from app containers (missing ones skipped)."""
        if self._env_map is None:
            self._env_map = {}
            for container in self.containers:
                for env in container.get("env") or ():
                    self._env_map["%s/%s" % (container.get("name"), env.get("name"))] = env
        out = []
        for entry in entries:
            names = set(entry.get("envNames") or ())
            if entry.get("envName"):
                names.add(entry["envName"])
            source = entry.get("sourceContainerName")
            field_ref = (entry.get("sourceContainerNameFrom") or {}).get("fieldRef")
            if field_ref:
                match = FIELD_REF_RE.match(field_ref.get("fieldPath") or "")
                if not match:
                    continue
                values = self.metadata.get(match.group(1)) or {}
                if match.group(2) not in values:
                    continue
                source = values[match.group(2)]
            for name in sorted(names):
                env = self._env_map.get("%s/%s" % (source, name))
                if env is not None:
                    out.append(env)
        return out


def _claims(hash_entries):
    """Map pod container name -> SidecarSet name from the ``sidecarList`` of every hash entry."""
    claims = {}
    for ss_name in sorted(hash_entries):
        for name in hash_entries[ss_name].get("sidecarList") or ():
            for pod_name in (name,) + hot_upgrade_names(name):
                claims.setdefault(pod_name, ss_name)
    return claims


def _owner(container, claims, compiled_by_name):
    """SidecarSet name that injected ``container`` or ``None`` for an app container."""
    if not is_injected_container(container):
        return None
    name = container.get("name")
    if name in claims:
        return claims[name]
    for ss_name, compiled in compiled_by_name.items():
        if name in compiled.produced:
            return ss_name
    return None


def _volume_refs(containers):
    refs = set()
    for container in containers:
        for mount in container.get("volumeMounts") or ():
            refs.add(mount.get("name"))
        for device in container.get("volumeDevices") or ():
            refs.add(device.get("name"))
    return refs


def _merge_list(existing, owners, rebuilt, new_items, dropped_owners):
    """Merge sidecars into a container list (``mergeSidecarContainers`` plus in-place re-injection).

    ``existing``: current containers; ``owners``: their owner names (None for app containers); ``rebuilt``: the
    SidecarSet names being re-injected; ``new_items``: ``[(container, policy)]`` in injection order;
    ``dropped_owners``: SidecarSet names whose containers must go. Returns ``(containers, old_replaced)``.
    """
    index_of = {c.get("name"): i for i, c in enumerate(existing)}
    result = list(existing)
    replaced_old = []
    placed = set()
    before, after = [], []
    for container, policy in new_items:
        name = container["name"]
        if name in index_of:
            position = index_of[name]
            replaced_old.append(result[position])
            result[position] = container
            placed.add(position)
        elif policy == BEFORE:
            before.append(container)
        else:
            after.append(container)
    kept = []
    removed = []
    for position, container in enumerate(result):
        owner = owners[position] if position < len(owners) else None
        if position not in placed and owner is not None and (owner in rebuilt or owner in dropped_owners):
            removed.append(container)
            continue
        # only sidecars injected earlier hold the insertion point: a pod container that is merely named like a
        # sidecar is replaced in place and new BeforeAppContainer sidecars still go in front of it (Kruise)
        kept.append((container, owner is not None))
    insert_at = 0
    while insert_at < len(kept) and kept[insert_at][1]:
        insert_at += 1
    if not before:
        insert_at = len(kept)
    final = [c for c, unused_flag in kept[:insert_at]] + before + [c for c, unused_flag in kept[insert_at:]] + after
    return final, replaced_old + removed


def apply_patch_pod_metadata(annotations, patches):
    """Kruise's ``PatchPodMetadata`` on an annotations dict, in place: ``patches`` is ``spec.patchPodMetadata``.

    ``Retain`` (the default) adds a missing key, ``Overwrite`` sets it, ``MergePatchJson`` merge-patches (RFC 7386)
    a non-empty current value or sets the value. The same function runs at injection and in the upgrade write
    (``hotupgrade``), as in Kruise. ``SidecarSetError`` when a current value to merge-patch is not JSON.
    """
    for patch in patches or ():
        policy = patch.get("patchPolicy") or "Retain"
        for key, value in (patch.get("annotations") or {}).items():
            current = annotations.get(key)
            if policy == "Retain":
                if key not in annotations:
                    annotations[key] = value
            elif policy == "Overwrite":
                annotations[key] = value
            elif policy == "MergePatchJson":
                if current:
                    try:
                        # evanphx/json-patch MergePatch re-marshals with Go: sorted keys, compact, HTML-escaped,
                        # non-ASCII kept
                        merged = _merge_patch(json.loads(current), json.loads(value))
                        annotations[key] = go_dumps(json.loads(json.dumps(merged, sort_keys=True)))
                    except ValueError:
                        raise SidecarSetError([("spec.patchPodMetadata", "cannot merge-patch pod annotation %s: "
                                                "the current value is not JSON" % key)])
                else:
                    annotations[key] = value


def _merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _check_clashes(matched, containers, init_containers, owners, init_owners, removing):
    """Raise ``SidecarSetError`` for names produced twice or taken by containers we did not inject."""
    producer = {}
    problems = []
    for compiled in matched:
        for pod_name in compiled.produced:
            if pod_name in producer:
                raise SidecarSetError([("spec", "container %r is injected by both SidecarSet '%s' and SidecarSet '%s'"
                                        % (pod_name, producer[pod_name], compiled.name))],
                                      sidecarset=compiled.name)
            producer[pod_name] = compiled.name
    for pod_list, owner_list, is_init in ((containers, owners, False), (init_containers, init_owners, True)):
        for position, container in enumerate(pod_list):
            name = container.get("name")
            if name not in producer:
                continue
            ss_name = producer[name]
            owner = owner_list[position]
            compiled = next(c for c in matched if c.name == ss_name)
            sidecar = compiled.produced[name]
            if owner == ss_name or owner in removing:
                if sidecar.is_init != is_init:
                    problems.append((ss_name, "container %r moves between containers and initContainers" % name))
                continue
            if owner is not None:
                problems.append((ss_name, "pod container %r was injected by SidecarSet '%s', it clashes with "
                                 "SidecarSet '%s'" % (name, owner, ss_name)))
            elif sidecar.hot or sidecar.is_init != is_init:
                kind = "initContainer" if is_init else "container"
                problems.append((ss_name, "pod %s %r was not injected by a SidecarSet; it clashes with the "
                                 "%s of SidecarSet '%s'" % (kind, name,
                                                            "HotUpgrade twin" if sidecar.hot else "sidecar", ss_name)))
    if problems:
        raise SidecarSetError([("spec.containers", message) for unused_name, message in problems],
                              sidecarset=problems[0][0])


def _revision_for(compiled, labels, old_hash, rand):
    """The compiled SidecarSet (latest or history) to inject. A template that already carries one of the two keeps
    it when the choice is a draw (``Partial`` with a percent partition), so that injecting again is idempotent."""
    if compiled.history is None:
        return compiled
    injected = (old_hash.get(compiled.name) or {}).get("hash")
    if injected == compiled.history.hash:
        rand = functools.partial(float, 0)  # a draw at or below any partition: the history
    elif injected == compiled.hash:
        rand = functools.partial(float, 1)  # above any partition below 100%: the latest
    chosen = choose_revision(compiled.source, compiled.history.source, labels, rand)
    return compiled.history if chosen is compiled.history.source else compiled


def inject_pod(pod, sidecarsets, namespace=None, namespace_labels=None, now=None, rand=None):
    """Inject the matching SidecarSets into a pod-like dict; return ``(new_pod, injected_names)``.

    A matched SidecarSet with ``injectionStrategy.revision`` and a resolved history (``revisions.attach_history``)
    injects the revision ``revisions.choose`` picks for this pod (``rand``: the draw of a ``Partial`` policy with a
    percent partition, ``random.random`` by default).

    The input is never mutated. The result is a new dict whose changed parts are fresh objects; parts that
    injection does not change (app containers, labels, other fields) may be shared with the input.
    """
    compiled_all = compile_sidecarsets(sidecarsets)
    pod = pod or {}
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    namespace = namespace or metadata.get("namespace") or "default"
    if namespace_labels is None:
        namespace_labels = namespace_labels_of(namespace)
    matched = [c for c in compiled_all if not c.paused and c.matches(labels, namespace_labels)]
    old_hash = read_hash_entries(annotations) if annotations.get(POD_HASH) else {}
    matched = [_revision_for(c, labels, old_hash, rand) for c in matched]
    old_list = read_injected_list(annotations)
    previous = set(old_hash) | set(old_list)
    matched_names = {c.name for c in matched}
    removing = {c.name for c in compiled_all if c.name in previous and not c.paused and c.name not in matched_names}
    new_pod = dict(pod)
    if not matched and not removing:
        return new_pod, []
    spec = pod.get("spec") or {}
    new_spec = new_pod["spec"] = dict(spec)
    new_meta = new_pod["metadata"] = dict(metadata)
    containers = spec.get("containers") or []
    init_containers = spec.get("initContainers") or []
    claims = _claims(old_hash)
    by_name = {c.name: c for c in matched}
    owners = [_owner(c, claims, by_name) for c in containers]
    init_claims = dict(claims)
    for compiled in matched:
        for init_name in compiled.init_names:
            init_claims.setdefault(init_name, compiled.name)
    init_owners = [_owner(c, init_claims, by_name) for c in init_containers]
    _check_clashes(matched, containers, init_containers, owners, init_owners, removing)

    excluded = set()
    for compiled in matched:
        excluded.update(compiled.produced)
        excluded.update(s.name for s in compiled.init + compiled.containers)
    context = _Context([c for c, o in zip(containers, owners) if o not in removing], metadata,
                       apps=[c for c, o in zip(containers, owners) if o is None],
                       init_apps=[c for c, o in zip(init_containers, init_owners) if o is None], excluded=excluded)
    ordered = injection_order(matched)
    new_containers, new_init = [], []
    for compiled in ordered:
        for sidecar in compiled.containers:
            for built in sidecar.build(context):
                new_containers.append((built, sidecar.policy))
        for sidecar in compiled.init:
            for built in sidecar.build(context):
                new_init.append((built, sidecar.policy))
    new_init.sort(key=lambda item: item[0]["name"])

    final_containers, old_containers = _merge_list(containers, owners, matched_names, new_containers, removing)
    final_init, old_init = _merge_list(init_containers, init_owners, matched_names, new_init, removing)
    new_spec["containers"] = final_containers
    if final_init or "initContainers" in spec:
        new_spec["initContainers"] = final_init
    _merge_volumes(new_spec, spec, ordered, _volume_refs(old_containers) | _volume_refs(old_init),
                   final_containers + final_init, {id(c) for c, dummy in new_containers + new_init})

    added = [secret for compiled in ordered for secret in compiled.secrets]
    if added:
        # mergeSidecarSecrets: the pod's own secrets first, de-duplicated too, then the SidecarSets' by name
        secrets = []
        _append_new(secrets, list(spec.get("imagePullSecrets") or []) + [dict(s) for s in added], "name", set())
        if secrets != list(spec.get("imagePullSecrets") or []):
            new_spec["imagePullSecrets"] = secrets

    new_annotations = dict(annotations)
    for compiled in ordered:
        apply_patch_pod_metadata(new_annotations, compiled.patches)
    _write_annotations(new_annotations, annotations, matched, removing, old_hash, old_list, format_timestamp(now))
    if new_annotations:
        new_meta["annotations"] = new_annotations
    else:
        new_meta.pop("annotations", None)
    return new_pod, [c.name for c in matched]


def _merge_volumes(new_spec, spec, matched, old_refs, final_containers, fresh_ids):
    """SidecarSet volumes named by sidecar mounts are added; an existing pod volume wins, except one that only
    the previous version of a re-injected SidecarSet used (it is replaced in place, or dropped)."""
    volumes = spec.get("volumes") or []
    wanted = {}
    for compiled in matched:
        for vol_name in compiled.needed_volumes:
            if vol_name not in wanted:
                wanted[vol_name] = compiled.volumes[vol_name]
    if not wanted and not old_refs:
        return
    ours = set()
    if old_refs:
        remaining_refs = _volume_refs(c for c in final_containers if id(c) not in fresh_ids)
        ours = {v.get("name") for v in volumes if v.get("name") in old_refs and v.get("name") not in remaining_refs}
    final_volumes = []
    present = set()
    for volume in volumes:
        vol_name = volume.get("name")
        if vol_name in ours:
            if vol_name in wanted:
                final_volumes.append(wanted[vol_name].get())
                present.add(vol_name)
            continue
        final_volumes.append(volume)
        present.add(vol_name)
    for vol_name, volume in wanted.items():
        if vol_name not in present:
            final_volumes.append(volume.get())
            present.add(vol_name)
    if final_volumes or "volumes" in spec:
        new_spec["volumes"] = final_volumes


def _write_annotations(new_annotations, annotations, matched, removing, old_hash, old_list, timestamp):
    """Write the hash, hash-without-image, injected-list, working and version annotations (as ``sidecarset.go`` does)."""
    fresh = not old_hash and not removing and not old_list and not annotations.get(POD_HASH_WITHOUT_IMAGE)
    working = read_working(annotations) if annotations.get(WORKING_HOTUPGRADE_CONTAINER) else {}
    if fresh:
        new_annotations[POD_HASH] = "{%s}" % ",".join(c.entry_json(timestamp, False) for c in matched)
        new_annotations[POD_HASH_WITHOUT_IMAGE] = "{%s}" % ",".join(c.entry_json(timestamp, True) for c in matched)
        if not working:
            key = tuple(c.name for c in matched)
            cached = _FRESH_WORKING.get(key)
            if cached is None:
                cached = write_working({s.name: hot_upgrade_names(s.name)[0] for c in matched for s in c.hot})
                if len(_FRESH_WORKING) > 256:
                    _FRESH_WORKING.clear()
                _FRESH_WORKING[key] = cached
            new_annotations[INJECTED_LIST] = ",".join(c.name for c in matched)
            if cached != "{}":
                new_annotations[WORKING_HOTUPGRADE_CONTAINER] = cached
            for compiled in matched:
                new_annotations.update(compiled.fresh_versions)
            return
    else:
        old_wo = read_hash_entries(annotations, POD_HASH_WITHOUT_IMAGE) if annotations.get(POD_HASH_WITHOUT_IMAGE) else {}
        hash_entries = dict(old_hash)
        wo_entries = dict(old_wo)
        for ss_name in removing:
            hash_entries.pop(ss_name, None)
            wo_entries.pop(ss_name, None)
        for compiled in matched:
            hash_entries[compiled.name] = compiled.entry(timestamp, False, old_hash.get(compiled.name))
            wo_entries[compiled.name] = compiled.entry(timestamp, True, old_wo.get(compiled.name))
        set_or_drop(new_annotations, POD_HASH, write_hash_entries(hash_entries) if hash_entries else None)
        set_or_drop(new_annotations, POD_HASH_WITHOUT_IMAGE, write_hash_entries(wo_entries) if wo_entries else None)
    stale_twins = set()
    for ss_name in set(removing) | {c.name for c in matched}:
        for name in (old_hash.get(ss_name) or {}).get("sidecarList") or ():
            working.pop(name, None)
            stale_twins.update(hot_upgrade_names(name))
    current_twins = set()
    versions = {}
    for compiled in matched:
        versions.update(compiled.fresh_versions)
        for sidecar in compiled.hot:
            working[sidecar.name] = hot_upgrade_names(sidecar.name)[0]
            current_twins.update(hot_upgrade_names(sidecar.name))
    for twin in stale_twins - current_twins:
        new_annotations.pop(version_key(twin), None)
        new_annotations.pop(version_alt_key(twin), None)
    names = (set(old_list) | {c.name for c in matched}) - set(removing)
    set_or_drop(new_annotations, INJECTED_LIST, write_injected_list(names) if names else None)
    set_or_drop(new_annotations, WORKING_HOTUPGRADE_CONTAINER, write_working(working) if working else None)
    new_annotations.update(versions)
