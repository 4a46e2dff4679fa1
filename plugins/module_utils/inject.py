# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# Apache License 2.0 (see LICENSE)
"""Inject SidecarSets into a pod or pod template, exactly as Kruise's pod webhook does (reference section 2).

``inject_pod(pod, sidecarsets, namespace=None, namespace_labels=None, now=None) -> (new_pod, injected_names)``
works on a pod-like dict ``{"metadata": ..., "spec": ...}`` (a Pod or a workload's pod template) and never
mutates its input. The SidecarSets (normalised by ``sidecarset.normalize_sidecarset``; un-normalised ones are
normalised on the fly) are applied in name order when they match and are not ``injectionStrategy.paused``.

Re-injection is idempotent and in place: containers, init containers and volumes a SidecarSet injected earlier
(recognised by the ``IS_INJECTED=true`` env plus the ``sidecarList`` of the pod's ``kruise.io/sidecarset-hash``
entry) are replaced at their positions; containers dropped from the SidecarSet are removed; the annotation
timestamps are kept when the hash did not change; HotUpgrade twins are reset to ``N-1`` working on the new image
and ``N-2`` empty, versions 1/0/0/1. A SidecarSet that is passed in, injected earlier and no longer matches (and
is not paused) is removed from the pod. App containers and containers of SidecarSets that are not passed in are
never touched. Container name clashes raise ``SidecarSetError``.

New ``BeforeAppContainer`` sidecars go in front of the first container that was not injected (index 0 for a
pod that has no injected sidecar yet, as in Kruise), ``AfterAppContainer`` ones are appended. Init containers of
all SidecarSets are stable-sorted by name before they are merged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
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
    hot_upgrade_names,
    read_hash_entries,
    read_injected_list,
    read_working,
    version_alt_key,
    version_key,
    write_hash_entries,
    write_injected_list,
    write_working,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.hashing import CONTAINER_FIELDS
from ansible_collections.meshops.sidecarset.plugins.module_utils.selectors import (
    compile_label_selector,
    is_empty_selector,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import (
    AFTER,
    BEFORE,
    clone,
    empty_image,
    get_hash,
    get_hash_without_image,
    is_hot_upgrade,
    normalize_sidecarset,
    sidecarset_name,
)

_SUBPATH_ENV_RE = re.compile(r"\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
_FIELD_REF_RE = re.compile(r"^metadata\.(annotations|labels)\['([^']*)'\]$")
_IS_INJECTED_ENV = {"name": ENV_IS_INJECTED, "value": "true"}


def format_timestamp(now=None):
    """RFC 3339 UTC with seconds (``2021-06-04T05:44:26Z``) of ``now`` (datetime, epoch seconds or string)."""
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    if isinstance(now, str):
        return now
    if isinstance(now, (int, float)):
        now = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    if now.tzinfo is not None:
        now = now.astimezone(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def is_injected_container(container):
    """True when the container carries the env ``IS_INJECTED=true`` (Kruise's sidecar marker)."""
    for env in container.get("env") or ():
        if env.get("name") == ENV_IS_INJECTED and env.get("value") == "true":
            return True
    return False


def _version_env(twin):
    return [
        {"name": ENV_VERSION, "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                         "fieldPath": "metadata.annotations['%s']" % version_key(twin)}}},
        {"name": ENV_VERSION_ALT, "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.annotations['%s']" % version_alt_key(twin)}}},
    ]


class _Sidecar(object):
    """One SidecarSet container (or init container), precompiled."""

    def __init__(self, container, is_init):
        self.name = container["name"]
        self.is_init = is_init
        self.native = is_init and container.get("restartPolicy") == "Always"
        self.policy = container.get("podInjectPolicy") or (AFTER if is_init else BEFORE)
        self.hot = is_hot_upgrade(container) and (self.native or not is_init)
        self.empty_image = empty_image(container)
        self.share_mounts = ((container.get("shareVolumePolicy") or {}).get("type") == "enabled")
        self.share_devices = ((container.get("shareVolumeDevicePolicy") or {}).get("type") == "enabled")
        self.transfer = container.get("transferEnv") or []
        template = {k: clone(v) for k, v in container.items() if k in CONTAINER_FIELDS}
        template["env"] = list(template.get("env") or []) + [dict(_IS_INJECTED_ENV)]
        self.template = template
        self.volume_names = [m.get("name") for m in container.get("volumeMounts") or ()]
        self.volume_names += [d.get("name") for d in container.get("volumeDevices") or ()]
        self.dynamic = bool(self.share_mounts or self.share_devices or self.transfer)
        self.names = list(hot_upgrade_names(self.name)) if self.hot else [self.name]
        self.static = None if self.dynamic else self._finish(template)

    def _finish(self, container):
        """Expand a fully merged container into the pod container(s) (HotUpgrade twins)."""
        if not self.hot:
            return [container]
        first, second = hot_upgrade_names(self.name)
        working = clone(container)
        working["name"] = first
        working["env"] = working["env"] + _version_env(first)
        idle = clone(container)
        idle["name"] = second
        idle["image"] = self.empty_image
        idle["env"] = idle["env"] + _version_env(second)
        return [working, idle]

    def build(self, context):
        """Return the pod containers for this sidecar (fresh objects)."""
        if self.static is not None:
            return [clone(c) for c in self.static]
        container = clone(self.template)
        env = container["env"]
        present = {e.get("name") for e in env}
        if self.transfer:
            for var in context.transfer_envs(self.transfer):
                if var.get("name") not in present:
                    env.append(clone(var))
                    present.add(var.get("name"))
        if self.share_mounts:
            mounts, extra_env = context.shared_mounts()
            used = {m.get("mountPath") for m in container.get("volumeMounts") or ()}
            used.update(d.get("devicePath") for d in container.get("volumeDevices") or ())
            merged = list(container.get("volumeMounts") or [])
            for mount in mounts:
                if mount.get("mountPath") not in used:
                    used.add(mount.get("mountPath"))
                    merged.append(clone(mount))
            if merged:
                container["volumeMounts"] = merged
            for var in extra_env:
                if var.get("name") not in present:
                    env.append(clone(var))
                    present.add(var.get("name"))
        if self.share_devices:
            used = {d.get("devicePath") for d in container.get("volumeDevices") or ()}
            used.update(m.get("mountPath") for m in container.get("volumeMounts") or ())
            merged = list(container.get("volumeDevices") or [])
            for device in context.shared_devices():
                if device.get("devicePath") not in used:
                    used.add(device.get("devicePath"))
                    merged.append(clone(device))
            if merged:
                container["volumeDevices"] = merged
        return self._finish(container)


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
        selector = spec.get("selector")
        self.select = (lambda labels: False) if is_empty_selector(selector) else compile_label_selector(selector)
        ns_selector = spec.get("namespaceSelector")
        self.select_namespace = None if ns_selector is None else compile_label_selector(ns_selector)
        self.init = [_Sidecar(c, True) for c in spec.get("initContainers") or ()]
        self.containers = [_Sidecar(c, False) for c in spec.get("containers") or ()]
        self.volumes = {v["name"]: v for v in spec.get("volumes") or ()}
        self.volume_order = [v["name"] for v in spec.get("volumes") or ()]
        self.secrets = spec.get("imagePullSecrets") or []
        self.patches = spec.get("patchPodMetadata") or []
        self.sidecar_list = sorted([s.name for s in self.containers] + [s.name for s in self.init if s.native])
        self.hot = [s for s in self.init + self.containers if s.hot]
        self.produced = {}
        for sidecar in self.init + self.containers:
            for pod_name in sidecar.names:
                self.produced[pod_name] = sidecar
        self.init_names = {n for s in self.init for n in s.names}

    def matches(self, labels, namespace_labels):
        """PodMatchedSidecarSet (the ``paused`` flag is checked by the caller)."""
        if self.select_namespace is not None and not self.select_namespace(namespace_labels):
            return False
        return self.select(labels)


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


def compile_sidecarsets(sidecarsets):
    """Compile a list of SidecarSets, sorted by name; duplicate names raise ``SidecarSetError``."""
    compiled = sorted((compile_sidecarset(s) for s in sidecarsets or ()), key=lambda c: c.name or "")
    for first, second in zip(compiled, compiled[1:]):
        if first.name == second.name:
            raise SidecarSetError([("metadata.name", "SidecarSet passed twice")], sidecarset=first.name)
    return compiled


class _Context(object):
    """Lazily computed facts about the pod being injected (shared mounts, env map)."""

    def __init__(self, containers, metadata):
        self.containers = containers
        self.metadata = metadata
        self._mounts = None
        self._devices = None
        self._env_map = None

    def _app_containers(self):
        return [c for c in self.containers if not is_injected_container(c)]

    def shared_mounts(self):
        """Mounts of the non-injected containers and the env their ``subPathExpr`` needs."""
        if self._mounts is None:
            mounts, envs = [], []
            for container in self._app_containers():
                own = {e.get("name"): e for e in container.get("env") or ()}
                for mount in container.get("volumeMounts") or ():
                    mounts.append(mount)
                for mount in container.get("volumeMounts") or ():
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
                match = _FIELD_REF_RE.match(field_ref.get("fieldPath") or "")
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
        kept.append((container, position in placed or owner is not None))
    insert_at = 0
    while insert_at < len(kept) and kept[insert_at][1]:
        insert_at += 1
    if not before:
        insert_at = len(kept)
    final = [c for c, unused_flag in kept[:insert_at]] + before + [c for c, unused_flag in kept[insert_at:]] + after
    return final, replaced_old + removed


def _apply_patches(annotations, patches):
    for patch in patches:
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
                        annotations[key] = json.dumps(_merge_patch(json.loads(current), json.loads(value)),
                                                      separators=(",", ":"), sort_keys=True)
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


def validate_no_clash(pod, sidecarsets, namespace=None, namespace_labels=None):
    """Raise ``SidecarSetError`` if injecting ``sidecarsets`` into ``pod`` would clash on container names."""
    inject_pod(pod, sidecarsets, namespace=namespace, namespace_labels=namespace_labels, now="1970-01-01T00:00:00Z")


def _new_entry(old, compiled, hash_value, timestamp, with_revision):
    keep = old is not None and old.get("hash") == hash_value and old.get("updateTimestamp")
    entry = {
        "updateTimestamp": old["updateTimestamp"] if keep else timestamp,
        "hash": hash_value,
        "sidecarSetName": compiled.name,
        "sidecarList": list(compiled.sidecar_list),
    }
    if with_revision and compiled.revision:
        entry["controllerRevision"] = compiled.revision
    return entry


def inject_pod(pod, sidecarsets, namespace=None, namespace_labels=None, now=None):
    """Inject the matching SidecarSets into a pod-like dict; return ``(new_pod, injected_names)``."""
    compiled_all = compile_sidecarsets(sidecarsets)
    metadata = (pod or {}).get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    namespace = namespace or metadata.get("namespace") or "default"
    if namespace_labels is None:
        namespace_labels = {NAMESPACE_NAME_LABEL: namespace}
    matched = [c for c in compiled_all if not c.paused and c.matches(labels, namespace_labels)]
    old_hash = read_hash_entries(annotations) if annotations.get(POD_HASH) else {}
    old_list = read_injected_list(annotations)
    previous = set(old_hash) | set(old_list)
    matched_names = {c.name for c in matched}
    removing = {c.name for c in compiled_all if c.name in previous and not c.paused and c.name not in matched_names}
    new_pod = clone(pod or {})
    if not matched and not removing:
        return new_pod, []
    new_meta = new_pod.setdefault("metadata", {})
    if new_meta is None:
        new_meta = new_pod["metadata"] = {}
    spec = new_pod.get("spec")
    if spec is None:
        spec = new_pod["spec"] = {}
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

    context = _Context([c for c, o in zip(containers, owners) if o not in removing], metadata)
    new_containers, new_init = [], []
    for compiled in matched:
        for sidecar in compiled.containers:
            for built in sidecar.build(context):
                new_containers.append((built, sidecar.policy))
    init_built = []
    for compiled in matched:
        for sidecar in compiled.init:
            for built in sidecar.build(context):
                init_built.append((built, sidecar.policy))
    init_built.sort(key=lambda item: item[0]["name"])
    new_init = init_built

    old_refs = set()
    final_containers, old_containers = _merge_list(containers, owners, matched_names, new_containers, removing)
    old_refs |= _volume_refs(old_containers)
    final_init, old_init = _merge_list(init_containers, init_owners, matched_names, new_init, removing)
    old_refs |= _volume_refs(old_init)
    spec["containers"] = final_containers
    if final_init or "initContainers" in spec:
        spec["initContainers"] = final_init

    # volumes: SidecarSet volumes named by sidecar mounts; an existing pod volume wins, except one that only
    # the previous version of a re-injected SidecarSet used (it is replaced in place or dropped).
    fresh_ids = {id(c) for c, unused_policy in new_containers} | {id(c) for c, unused_policy in new_init}
    remaining_refs = _volume_refs(c for c in final_containers + final_init if id(c) not in fresh_ids)
    volumes = spec.get("volumes") or []
    ours = {v.get("name") for v in volumes if v.get("name") in old_refs and v.get("name") not in remaining_refs}
    wanted = {}
    for compiled in matched:
        needed = set()
        for sidecar in compiled.init + compiled.containers:
            needed.update(sidecar.volume_names)
        for vol_name in compiled.volume_order:
            if vol_name in needed and vol_name not in wanted:
                wanted[vol_name] = compiled.volumes[vol_name]
    final_volumes = []
    present = set()
    for volume in volumes:
        vol_name = volume.get("name")
        if vol_name in ours:
            if vol_name in wanted:
                final_volumes.append(clone(wanted[vol_name]))
                present.add(vol_name)
            continue
        final_volumes.append(volume)
        present.add(vol_name)
    for vol_name, volume in wanted.items():
        if vol_name not in present:
            final_volumes.append(clone(volume))
            present.add(vol_name)
    if final_volumes or "volumes" in spec:
        spec["volumes"] = final_volumes

    secrets = spec.get("imagePullSecrets") or []
    secret_names = {s.get("name") for s in secrets}
    added_secret = False
    for compiled in matched:
        for secret in compiled.secrets:
            if secret.get("name") not in secret_names:
                secrets.append(clone(secret))
                secret_names.add(secret.get("name"))
                added_secret = True
    if added_secret:
        spec["imagePullSecrets"] = secrets

    new_annotations = new_meta.get("annotations")
    if not isinstance(new_annotations, dict):
        new_annotations = new_meta["annotations"] = {}
    for compiled in matched:
        _apply_patches(new_annotations, compiled.patches)
    _write_annotations(new_annotations, annotations, matched, removing, old_hash, old_list, format_timestamp(now))
    if not new_annotations:
        new_meta.pop("annotations", None)
    return new_pod, [c.name for c in matched]


def _write_annotations(new_annotations, annotations, matched, removing, old_hash, old_list, timestamp):
    """Write the hash, hash-without-image, injected-list, working and version annotations (reference 2.6)."""
    old_wo = read_hash_entries(annotations, POD_HASH_WITHOUT_IMAGE) if annotations.get(POD_HASH_WITHOUT_IMAGE) else {}
    hash_entries = dict(old_hash)
    wo_entries = dict(old_wo)
    working = read_working(annotations) if annotations.get(WORKING_HOTUPGRADE_CONTAINER) else {}
    stale_twins = set()
    for ss_name in set(removing) | {c.name for c in matched}:
        for name in (old_hash.get(ss_name) or {}).get("sidecarList") or ():
            working.pop(name, None)
            stale_twins.update(hot_upgrade_names(name))
    for ss_name in removing:
        hash_entries.pop(ss_name, None)
        wo_entries.pop(ss_name, None)
    current_twins = set()
    versions = {}
    for compiled in matched:
        hash_entries[compiled.name] = _new_entry(old_hash.get(compiled.name), compiled, compiled.hash, timestamp, True)
        wo_entries[compiled.name] = _new_entry(old_wo.get(compiled.name), compiled, compiled.hash_without_image,
                                               timestamp, False)
        for sidecar in compiled.hot:
            first, second = hot_upgrade_names(sidecar.name)
            working[sidecar.name] = first
            current_twins.update((first, second))
            versions[version_key(first)] = "1"
            versions[version_alt_key(first)] = "0"
            versions[version_key(second)] = "0"
            versions[version_alt_key(second)] = "1"
    for twin in stale_twins - current_twins:
        new_annotations.pop(version_key(twin), None)
        new_annotations.pop(version_alt_key(twin), None)
    _set_or_drop(new_annotations, POD_HASH, write_hash_entries(hash_entries) if hash_entries else None)
    _set_or_drop(new_annotations, POD_HASH_WITHOUT_IMAGE, write_hash_entries(wo_entries) if wo_entries else None)
    names = (set(old_list) | {c.name for c in matched}) - set(removing)
    _set_or_drop(new_annotations, INJECTED_LIST, write_injected_list(names) if names else None)
    _set_or_drop(new_annotations, WORKING_HOTUPGRADE_CONTAINER, write_working(working) if working else None)
    new_annotations.update(versions)


def _set_or_drop(annotations, key, value):
    if value is None:
        annotations.pop(key, None)
    else:
        annotations[key] = value
