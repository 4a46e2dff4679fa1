# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load, convert, default, validate and hash SidecarSets (Kruise's API, defaults and validating webhook: docs/kruise-mapping.md); pure, no I/O
other than reading the files it is asked to read.

Contract:

* ``parse_sidecarset_yaml(text, source=None)`` returns the raw SidecarSet dicts of a (multi-document) YAML text.
  Non-SidecarSet documents and YAML syntax errors raise ``SidecarSetError`` naming the file, the document and,
  for syntax errors, line and column.
* ``normalize_sidecarset(obj, source=None)`` accepts ``apps.kruise.io/v1alpha1`` and ``v1beta1`` objects (or a
  plain ``{"metadata": {"name": ...}, "spec": {...}}``), converts to v1beta1, applies Kruise's and Kubernetes'
  defaults, validates (collecting every error into one ``SidecarSetError``) and stores both hashes in
  ``metadata.annotations``. The input is never mutated; normalising a normalised object returns an equal object.
* ``load_sidecarsets(items, base_dir=None)`` takes file paths, directories and dicts and returns the normalised
  SidecarSets sorted by name; duplicate names are rejected.
* ``structure_problem(value)``: a document nested deeper than ``MAX_DEPTH`` (or holding itself through a YAML
  alias) or holding more than ``MAX_VALUES`` values (an alias bomb) is refused with the path where it goes wrong,
  before anything recursive or copying touches it; the manifest loader uses it too.
* Accessors for the other engine modules: ``sidecar_containers``, ``init_sidecar_containers``, ``hot_sidecars``,
  ``empty_image``, ``is_hot_upgrade``, ``get_hash``, ``get_hash_without_image``, ``sidecarset_name``,
  ``update_strategy``, ``matches_pod``: the one home of these, tolerant of missing parts (``None`` or ``""``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import json
import os
import re

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML is a requirement of ansible-core
    yaml = None

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import (
    CUSTOM_VERSION_LABEL,
    NAMESPACE_NAME_LABEL,
    SIDECARSET_HASH,
    SIDECARSET_HASH_WITHOUT_IMAGE,
    hot_upgrade_names,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.hashing import (
    STRUCTS,
    canonical_quantity,
    sidecarset_hashes,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.resources import (
    default_resources_policy,
    validate_resources_policy,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.selectors import (
    is_empty_selector,
    validate_label_selector,
    validate_qualified_name,
)

V1ALPHA1 = "apps.kruise.io/v1alpha1"
V1BETA1 = "apps.kruise.io/v1beta1"
KIND = "SidecarSet"

BEFORE = "BeforeAppContainer"
AFTER = "AfterAppContainer"
COLD = "ColdUpgrade"
HOT = "HotUpgrade"

SPEC_FIELDS_V1BETA1 = (
    "selector", "namespaceSelector", "initContainers", "containers", "volumes", "updateStrategy",
    "injectionStrategy", "imagePullSecrets", "revisionHistoryLimit", "patchPodMetadata", "customVersion",
)
OBJECT_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")
UPDATE_STRATEGY_FIELDS = ("type", "paused", "selector", "partition", "maxUnavailable", "priorityStrategy",
                          "scatterStrategy")
INJECTION_STRATEGY_FIELDS = ("paused", "revision")
REVISION_FIELDS = ("revisionName", "customVersion", "policy")
PATCH_FIELDS = ("annotations", "patchPolicy")
PATCH_POLICIES = ("Retain", "Overwrite", "MergePatchJson")
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI", "fc",
    "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "projected",
    "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
)

_SIDECARSET_NAME_RE = re.compile(r"^[a-zA-Z0-9\-]+$")
_DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PERCENT_RE = re.compile(r"^[0-9]+%$")
FIELD_REF_RE = re.compile(r"^metadata\.(annotations|labels)\['([^']*)'\]$")
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
MAX_DEPTH = 100  # Kubernetes objects nest ~20 levels; the recursive helpers stay far from Python's limit
MAX_VALUES = 1000000  # values of one document, aliases counted as often as they are used (a bomb expands)


def structure_problem(value, max_depth=MAX_DEPTH, max_values=MAX_VALUES):
    """Return ``(field_path, message)`` when ``value`` nests too deeply or holds too many values, else ``None``.

    Iterative (no recursion) and stops at the first problem, so its cost is bounded by ``max_values``.
    """
    stack = [(value, None, 0)]  # (node, trail, depth); the trail (parent trail, key, in a list) becomes the path
    seen = 0
    while stack:
        node, trail, depth = stack.pop()
        if isinstance(node, dict):
            items = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        seen += len(node)
        if depth >= max_depth:
            return _trail_path(trail), "nested deeper than %d levels (or a YAML alias that contains itself)" % max_depth
        if seen > max_values:
            return _trail_path(trail), "more than %d values in one document (a YAML alias bomb?)" % max_values
        in_list = isinstance(node, list)
        for key, child in items:
            if isinstance(child, (dict, list)):
                stack.append((child, (trail, key, in_list), depth + 1))
    return None


def _trail_path(trail):
    parts = []
    while trail is not None:
        trail, key, in_list = trail
        parts.append("[%d]" % key if in_list else ".%s" % (key,))
    parts.reverse()
    if len(parts) > 12:  # the start of a very deep path is enough to find it
        parts = parts[:12] + ["..."]
    return "".join(parts).lstrip(".")


def _items(value):
    """``value`` when it is a list, else no items (its type is reported by the validation)."""
    return value if isinstance(value, list) else ()


def _entries(container, field, path):
    """``(path, entry)`` of the mapping entries of the list ``container[field]`` (the rest is reported by ``check_struct``)."""
    return [("%s.%s[%d]" % (path, field, index), entry) for index, entry in enumerate(_items(container.get(field)))
            if isinstance(entry, dict)]


def _is_empty_selector(selector):
    """``selectors.is_empty_selector`` for a value of any type (a non-mapping is reported by the validation)."""
    return is_empty_selector(selector) if isinstance(selector, dict) or not selector else False


def clone(value):
    """Deep-copy JSON-like data (dicts, lists, scalars) much faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def to_plain(value):
    """Return JSON-like data made of builtin types only (``str`` subclasses such as Ansible's unsafe text become
    ``str``), so that it can be marshalled and safely dumped as YAML."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    for kind in (bool, str, int, float):  # bool before int: True stays a bool
        if isinstance(value, kind):
            return kind(value)
    return value


def require_yaml(error=SidecarSetError):
    """Raise ``error`` when PyYAML is missing (the SidecarSet and the manifest readers need it)."""
    if yaml is None:
        raise error("PyYAML is required to read and write YAML (pip install PyYAML)")


# ---------------------------------------------------------------- YAML


class YamlProblem(Exception):
    """Why a YAML text cannot be read, before a reader's own error type: ``what`` (``syntax``: a PyYAML
    ``MarkedYAMLError`` in ``exc``; ``reader``: a character or encoding error; ``deep``; ``construct``; ``structure``:
    ``field`` is the path), ``message``, ``document`` index (``None`` before the first) and ``line``."""

    def __init__(self, what, message, document=None, line=None, exc=None, field=None):
        super().__init__(message)
        self.what, self.message, self.document, self.line, self.exc, self.field = what, message, document, line, exc, field


def read_yaml(text):
    """Yield ``(index, line, data)`` for every document of a multi-document YAML text (``data`` is ``None`` for an
    empty one): the one loader loop of SidecarSets (``yaml_documents``) and manifests (``manifests.iter_documents``).

    Raises ``YamlProblem``; a document nested too deeply, an alias bomb or a value PyYAML cannot construct is one too.
    """
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)  # libyaml when available
    except UnicodeError as exc:
        raise YamlProblem("reader", exc.reason, line=unmarked_error_line(text, exc))
    index = 0
    try:
        while True:
            line = None
            try:
                if not loader.check_node():
                    break
                node = loader.get_node()
                line = node.start_mark.line + 1 if node is not None else None
                data = loader.construct_document(node) if node is not None else None
            except yaml.MarkedYAMLError as exc:
                raise YamlProblem("syntax", exc.problem or exc.context or "invalid YAML", index, exc=exc)
            except (yaml.YAMLError, UnicodeError) as exc:  # ReaderError: a character YAML does not allow; no mark
                raise YamlProblem("reader", str(exc).split("\n", maxsplit=1)[0], index, unmarked_error_line(text, exc))
            except RecursionError:
                raise YamlProblem("deep", "nested too deeply to load", index, line)
            except (ValueError, TypeError, IndexError, OverflowError) as exc:  # PyYAML on explicit tags (!!float a)
                raise YamlProblem("construct", "cannot construct a value: %s" % exc, index, line)
            problem = structure_problem(data)
            if problem:
                raise YamlProblem("structure", problem[1], index, line, field=problem[0])
            yield index, line, data
            index += 1
    finally:
        loader.dispose()


def yaml_documents(text, source=None):
    """Parse multi-document YAML; return ``[(index, line, data)]`` (``line`` 1-based, empty documents skipped).

    A syntax error raises ``SidecarSetError`` naming the file, the document index, line and column.
    """
    require_yaml()
    try:
        return [(index, line, data) for index, line, data in read_yaml(text) if data is not None]
    except YamlProblem as exc:
        raise SidecarSetError([_problem_entry(exc)], source=source, document=exc.document)


def _problem_entry(exc):
    """The ``(field, message)`` of a ``YamlProblem`` as SidecarSet errors word it."""
    if exc.what == "structure":
        return exc.field, exc.message
    if exc.what == "syntax":
        mark = exc.exc.problem_mark or exc.exc.context_mark
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark is not None else ""
        return "", "YAML syntax error%s: %s" % (where, exc.message)
    if exc.what == "construct":
        return "", "YAML error in the document at line %s: %s" % (exc.line, exc.message)
    return "", "YAML error%s: %s" % (" at line %s" % exc.line if exc.line else "", exc.message)


def unmarked_error_line(text, exc):
    """The 1-based line of a YAML error without a mark (``ReaderError.position``, ``UnicodeError.start``), or ``None``."""
    position = getattr(exc, "position", getattr(exc, "start", None))
    if not isinstance(position, int) or not isinstance(text, str):
        return None
    return text.count("\n", 0, position) + 1


def _split_lists(documents):
    """Expand ``kind: List`` / ``SidecarSetList`` documents into their items, keeping the document index."""
    out = []
    for index, line, data in documents:
        if isinstance(data, dict) and data.get("kind") in ("List", "SidecarSetList") and "items" in data:
            for item in data.get("items") or []:
                out.append((index, line, item))
        else:
            out.append((index, line, data))
    return out


def _check_kind(data, source, index):
    if not isinstance(data, dict):
        raise SidecarSetError([("", "document is a %s, expected a SidecarSet mapping" % type(data).__name__)],
                              source=source, document=index)
    name = (data.get("metadata") or {}).get("name") if isinstance(data.get("metadata"), dict) else None
    errors = _kind_errors(data.get("kind"), data.get("apiVersion"))
    if errors:
        raise SidecarSetError(errors[:1], sidecarset=name, source=source, document=index)


def _kind_errors(kind, api_version):
    """The one check of a SidecarSet's kind and apiVersion: ``[(field, message)]``."""
    errors = []
    if kind != KIND:
        errors.append(("kind", "expected kind SidecarSet (apiVersion %s or %s), got %r" % (V1ALPHA1, V1BETA1, kind)))
    if api_version not in (V1ALPHA1, V1BETA1):
        errors.append(("apiVersion", "unsupported apiVersion %r (expected %s or %s)" % (api_version, V1ALPHA1, V1BETA1)))
    return errors


def parse_sidecarset_yaml(text, source=None):
    """Return the raw SidecarSet dicts of a multi-document YAML text (``List`` documents are expanded)."""
    return [data for unused_index, unused_line, data in _parse_with_index(text, source)]


def _parse_with_index(text, source):
    documents = _split_lists(yaml_documents(text, source))
    for index, unused_line, data in documents:
        _check_kind(data, source, index)
    return documents


# ---------------------------------------------------------------- loading


def _files_of(path):
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.endswith((".yaml", ".yml", ".json")) and not n.startswith("."))
        return [os.path.join(path, n) for n in names]
    return [path]


def load_sidecarsets(items, base_dir=None):
    """Load and normalise SidecarSets from file paths, directories (``*.yaml``, ``*.yml``, ``*.json``) and dicts.

    Relative paths are resolved against ``base_dir`` (default: the working directory). Returns the normalised
    SidecarSets sorted by name; two SidecarSets with the same name raise ``SidecarSetError`` naming both sources.
    """
    if items is None:
        return []
    if isinstance(items, (str, dict)) or hasattr(items, "__fspath__"):
        items = [items]
    loaded = []
    for item in items:
        if isinstance(item, dict):
            loaded.append((item, None, None))
            continue
        if (not isinstance(item, str) and not hasattr(item, "__fspath__")) or item == "":
            raise SidecarSetError("SidecarSet items must be file paths, directories or mappings, got %s"
                                  % ("an empty string" if item == "" else type(item).__name__))
        path = os.fspath(item)
        if base_dir and not os.path.isabs(path):
            path = os.path.join(base_dir, path)
        if not os.path.exists(path):
            raise SidecarSetError([("", "file or directory not found")], source=path)
        for filename in _files_of(path):
            try:
                with open(filename, "r", encoding="utf-8") as handle:
                    text = handle.read()
            except (IOError, OSError, UnicodeDecodeError) as exc:
                raise SidecarSetError([("", "cannot read file: %s" % exc)], source=filename)
            documents = _parse_with_index(text, filename)
            multi = len(documents) > 1
            for index, unused_line, data in documents:
                loaded.append((data, filename, index if multi else None))
    result = {}
    sources = {}
    for data, source, index in loaded:
        normalized = normalize_sidecarset(data, source, index)
        name = sidecarset_name(normalized)
        if name in result:
            raise SidecarSetError([("metadata.name", "duplicate SidecarSet name (also defined in %s)"
                                    % (sources[name] or "an inline definition"))],
                                  sidecarset=name, source=source, document=index)
        result[name] = normalized
        sources[name] = source
    return [result[name] for name in sorted(result)]


# ---------------------------------------------------------------- conversion and defaults


def _convert_to_v1beta1(obj, errors):
    """Convert (in place, on a copy) to v1beta1 (``apis/apps/v1alpha1/sidecarset_conversion.go``); append conversion errors."""
    api_version = obj.get("apiVersion")
    spec = obj["spec"]
    if api_version is None:
        api_version = V1ALPHA1 if "namespace" in spec else V1BETA1
    errors.extend(_kind_errors(obj.get("kind", KIND), api_version))
    if api_version == V1ALPHA1:
        if "namespace" in spec:
            namespace = spec.pop("namespace")
            if namespace:
                if not isinstance(namespace, str):
                    errors.append(("spec.namespace", "must be a string"))
                else:
                    spec["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}
        labels = obj["metadata"].get("labels")
        if isinstance(labels, dict) and CUSTOM_VERSION_LABEL in labels:
            spec["customVersion"] = labels.pop(CUSTOM_VERSION_LABEL)
            if not labels:
                obj["metadata"].pop("labels")
    elif "namespace" in spec:
        errors.append(("spec.namespace", "not a v1beta1 field (v1alpha1 only): use spec.namespaceSelector"))
    obj["apiVersion"] = V1BETA1
    obj["kind"] = KIND


def _image_tag(image):
    name, digest = image, ""
    if "@" in name:
        name, digest = name.split("@", 1)
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if not tag and not digest:
        tag = "latest"
    return tag


def _default(mapping, falsy=True, **values):
    """Set each of ``values`` (in order) that ``mapping`` holds as a falsy value (Go's zero value) or lacks; with
    ``falsy=False`` only where it holds ``None`` or lacks it. No-op unless ``mapping`` is a mapping."""
    if isinstance(mapping, dict):
        for key, value in values.items():
            if (not mapping.get(key)) if falsy else mapping.get(key) is None:
                mapping[key] = value


def _default_http_get(handler):
    if isinstance(handler, dict):
        _default(handler.get("httpGet"), path="/", scheme="HTTP")


def _default_probe(probe):
    if not isinstance(probe, dict):
        return
    _default(probe, timeoutSeconds=1, periodSeconds=10, successThreshold=1, failureThreshold=3)
    _default_http_get(probe)
    _default(probe.get("grpc"), falsy=False, service="")


def default_container(container):
    """Apply the Kubernetes container defaults (``SetDefaults_Container`` and friends) in place."""
    image = container.get("image")
    if not container.get("imagePullPolicy") and isinstance(image, str):
        container["imagePullPolicy"] = "Always" if _image_tag(image) == "latest" else "IfNotPresent"
    _default(container, terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File")
    for port in _items(container.get("ports")):
        _default(port, protocol="TCP")
    for env in _items(container.get("env")):
        if isinstance(env, dict) and isinstance(env.get("valueFrom"), dict):
            _default(env["valueFrom"].get("fieldRef"), apiVersion="v1")
    if container.get("resources") is None:
        # the API server stores an empty ResourceRequirements on every container; so do we, so that a
        # template read back from the cluster compares equal to what we injected
        container["resources"] = {}
    resources = container.get("resources")
    if isinstance(resources, dict):
        for key in ("limits", "requests"):
            if isinstance(resources.get(key), dict):
                resources[key] = {k: canonical_quantity(v) for k, v in resources[key].items()}
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(container.get(key))
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        _default_http_get(lifecycle.get("postStart"))
        _default_http_get(lifecycle.get("preStop"))


def _default_sidecar_container(container, inject_policy):
    if not isinstance(container, dict):
        return
    _default(container, podInjectPolicy=inject_policy)
    for key, field, value in (("upgradeStrategy", "upgradeType", COLD), ("shareVolumePolicy", "type", "disabled")):
        if container.get(key) is None:
            container[key] = {}
        _default(container[key], **{field: value})
    for entry in _items(container.get("transferEnv")):
        if isinstance(entry, dict) and isinstance(entry.get("sourceContainerNameFrom"), dict):
            _default(entry["sourceContainerNameFrom"].get("fieldRef"), apiVersion="v1")
    default_resources_policy(container)
    default_container(container)


def _default_volume(volume):
    if not isinstance(volume, dict):
        return
    if not any(key in volume for key in VOLUME_SOURCES):
        volume["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        _default(volume.get(key), falsy=False, defaultMode=420)
    _default(volume.get("hostPath"), falsy=False, type="")


def _apply_defaults(obj):
    spec = obj["spec"]
    if spec.get("updateStrategy") is None:
        spec["updateStrategy"] = {}
    _default(spec["updateStrategy"], type="RollingUpdate")
    _default(spec["updateStrategy"], falsy=False, maxUnavailable=1, partition=0)
    for key, inject_policy in (("initContainers", AFTER), ("containers", BEFORE)):
        for container in _items(spec.get(key)):
            _default_sidecar_container(container, inject_policy)
    for volume in _items(spec.get("volumes")):
        _default_volume(volume)
    _default(spec, falsy=False, revisionHistoryLimit=10)
    for patch in _items(spec.get("patchPodMetadata")):
        _default(patch, patchPolicy="Retain")
    injection = spec.get("injectionStrategy")
    if isinstance(injection, dict):
        _default(injection.get("revision"), policy="Always")


# ---------------------------------------------------------------- validation


_KIND_TYPES = {
    "S": (str,), "s": (str,), "I": (int,), "i": (int,), "b": (bool,), "L": (list,), "l": (list,), "st": (dict,),
    "p": (dict,), "m": (dict,), "q": (dict,), "o": (int, str),
}
_KIND_NAMES = {
    "S": "a string", "s": "a string", "I": "an integer", "i": "an integer", "b": "a boolean", "L": "a list of strings",
    "l": "a list", "st": "a mapping", "p": "a mapping", "m": "a mapping", "q": "a mapping of quantities",
    "o": "an integer or a string",
}


def check_struct(value, type_name, path, errors, strict=True):
    """Report unknown keys (unless not ``strict``) and wrongly typed values of a known Kubernetes/Kruise struct,
    recursively (``hashing.STRUCTS``)."""
    if not isinstance(value, dict):
        errors.append((path, "must be a mapping"))
        return
    fields = {name: (kind, sub) for name, kind, sub in STRUCTS[type_name]}
    for key, field in value.items():
        fpath = "%s.%s" % (path, key)
        if key not in fields:
            if not strict:
                continue
            hint = difflib.get_close_matches(str(key), list(fields), n=1) if len(errors) < 50 else None
            errors.append((fpath, "unknown field%s" % ((" (did you mean %r?)" % hint[0]) if hint else "")))
            continue
        kind, sub = fields[key]
        if field is None:
            continue
        expected = _KIND_TYPES.get(kind)
        if expected is not None:
            if not isinstance(field, expected) or (isinstance(field, bool) and bool not in expected):
                errors.append((fpath, "must be %s" % _KIND_NAMES[kind]))
                continue
        if kind in ("st", "p"):
            check_struct(field, sub, fpath, errors, strict)
        elif kind == "l":
            for index, item in enumerate(field):
                check_struct(item, sub, "%s[%d]" % (fpath, index), errors, strict)
        elif kind == "L":
            for index, item in enumerate(field):
                if not isinstance(item, str):
                    errors.append(("%s[%d]" % (fpath, index), "must be a string"))


def _check_handler(handler, path, allowed, errors):
    if not isinstance(handler, dict):
        return
    present = [key for key in allowed if handler.get(key) is not None]
    if not present:
        errors.append((path, "must specify a handler type (one of %s)" % ", ".join(allowed)))
    elif len(present) > 1:
        errors.append((path, "may not specify more than 1 handler type (got %s)" % ", ".join(present)))
    for key in ("httpGet", "tcpSocket", "grpc"):
        if isinstance(handler.get(key), dict) and handler[key].get("port") in (None, ""):
            errors.append(("%s.%s.port" % (path, key), "required"))


def _check_int_or_percent(value, path, errors):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        errors.append((path, "must be a non-negative integer or a percentage like '10%'"))
    elif isinstance(value, int):
        if value < 0:
            errors.append((path, "must be greater than or equal to 0"))
    elif not _PERCENT_RE.match(value):
        errors.append((path, "%r must be a non-negative integer or a percentage like '10%%'" % value))


def _unknown_fields(value, fields, path, errors):
    errors.extend(("%s.%s" % (path, key), "unknown field") for key in value if key not in fields)


def _is_zero_int_or_percent(value):
    return value in (None, 0, "0%", "0")


def _validate_env(container, path, errors):
    for epath, env in _entries(container, "env", path):
        name = env.get("name")
        if not name or not isinstance(name, str):
            errors.append(("%s.name" % epath, "required"))
        elif not _ENV_NAME_RE.match(name):
            errors.append(("%s.name" % epath, "%r is not a valid environment variable name" % name))
        source = env.get("valueFrom")
        if isinstance(source, dict):
            kinds = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef") if source.get(k)]
            if len(kinds) != 1:
                errors.append(("%s.valueFrom" % epath, "must specify exactly one of fieldRef, resourceFieldRef, "
                               "configMapKeyRef or secretKeyRef"))
            if env.get("value") not in (None, ""):
                errors.append(("%s.valueFrom" % epath, "may not be specified when value is not empty"))


def _validate_ports(container, path, errors):
    for ppath, port in _entries(container, "ports", path):
        number = port.get("containerPort")
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
            errors.append(("%s.containerPort" % ppath, "must be an integer between 1 and 65535"))
        host_port = port.get("hostPort")
        if host_port is not None and (not isinstance(host_port, int) or not 0 <= host_port <= 65535):
            errors.append(("%s.hostPort" % ppath, "must be an integer between 0 and 65535"))
        if port.get("protocol") not in ("TCP", "UDP", "SCTP"):
            errors.append(("%s.protocol" % ppath, "must be TCP, UDP or SCTP"))


def _validate_mounts(container, path, volume_names, errors):
    paths = {}  # mountPath and devicePath share one namespace in the container
    for field, path_key, clash in (("volumeMounts", "mountPath", "%r must be unique (also used by %s)"),
                                   ("volumeDevices", "devicePath", "%r collides with %s")):
        for upath, use in _entries(container, field, path):
            name, target = use.get("name"), use.get(path_key)
            if not name:
                errors.append(("%s.name" % upath, "required"))
            elif isinstance(name, str) and name not in volume_names:  # a non-string is reported by check_struct
                errors.append(("%s.name" % upath, "volume %r not found in spec.volumes" % name))
            if not target:
                errors.append(("%s.%s" % (upath, path_key), "required"))
            elif isinstance(target, str) and target in paths:  # a non-string is reported by check_struct
                errors.append(("%s.%s" % (upath, path_key), clash % (target, paths[target])))
            elif isinstance(target, str):
                paths[target] = upath
            if use.get("subPath") and use.get("subPathExpr"):
                errors.append(("%s.subPathExpr" % upath, "subPathExpr and subPath are mutually exclusive"))


def _validate_transfer_env(container, path, errors):
    for tpath, entry in _entries(container, "transferEnv", path):
        source_from = entry.get("sourceContainerNameFrom")
        if entry.get("sourceContainerName") and source_from:
            errors.append((tpath, "sourceContainerName and sourceContainerNameFrom are mutually exclusive"))
        elif not entry.get("sourceContainerName") and not source_from:
            errors.append((tpath, "one of sourceContainerName or sourceContainerNameFrom is required"))
        if not entry.get("envName") and not entry.get("envNames"):
            errors.append((tpath, "one of envName or envNames is required"))
        if isinstance(source_from, dict):
            field_ref = source_from.get("fieldRef")
            fpath = "%s.sourceContainerNameFrom.fieldRef" % tpath
            if not isinstance(field_ref, dict):
                errors.append((fpath, "required"))
                continue
            if field_ref.get("apiVersion") != "v1":
                errors.append(("%s.apiVersion" % fpath, "must be v1, got %r" % field_ref.get("apiVersion")))
            field_path = field_ref.get("fieldPath")
            match = FIELD_REF_RE.match(field_path) if isinstance(field_path, str) else None
            if not match:
                errors.append(("%s.fieldPath" % fpath, "%r: field label not supported (only "
                               "metadata.annotations['<key>'] and metadata.labels['<key>'])" % (field_path,)))
            else:
                for problem in validate_qualified_name(match.group(2)):
                    errors.append(("%s.fieldPath" % fpath, "invalid key %r: %s" % (match.group(2), problem)))


def _validate_container(container, path, is_init, volume_names, errors):
    if not isinstance(container, dict):
        errors.append((path, "must be a mapping"))
        return
    check_struct(container, "SidecarContainer", path, errors)
    name = container.get("name")
    if not name:
        errors.append(("%s.name" % path, "required"))
    elif not isinstance(name, str) or len(name) > 63 or not _DNS1123_LABEL_RE.match(name):
        errors.append(("%s.name" % path, "%r must be a valid DNS-1123 label (lowercase alphanumerics and '-', "
                       "at most 63 characters)" % (name,)))
    if not container.get("image"):
        errors.append(("%s.image" % path, "required"))
    if container.get("imagePullPolicy") not in ("Always", "IfNotPresent", "Never"):
        errors.append(("%s.imagePullPolicy" % path, "%r must be Always, IfNotPresent or Never"
                       % (container.get("imagePullPolicy"),)))
    if container.get("terminationMessagePolicy") not in ("File", "FallbackToLogsOnError"):
        errors.append(("%s.terminationMessagePolicy" % path, "must be File or FallbackToLogsOnError"))
    if container.get("podInjectPolicy") not in (BEFORE, AFTER):
        errors.append(("%s.podInjectPolicy" % path, "%r must be %s or %s"
                       % (container.get("podInjectPolicy"), BEFORE, AFTER)))
    for key in ("shareVolumePolicy", "shareVolumeDevicePolicy"):
        policy = container.get(key)
        if isinstance(policy, dict) and policy.get("type") not in ("enabled", "disabled"):
            errors.append(("%s.%s.type" % (path, key), "%r must be enabled or disabled" % (policy.get("type"),)))
    native = is_init and container.get("restartPolicy") == "Always"
    restart_policy = container.get("restartPolicy")
    if restart_policy is not None:
        if not is_init:
            errors.append(("%s.restartPolicy" % path, "may only be set on initContainers"))
        elif restart_policy != "Always":
            errors.append(("%s.restartPolicy" % path, "%r: only Always (native sidecar) is supported" % restart_policy))
    if is_init and not native:
        for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
            if container.get(key) is not None:
                errors.append(("%s.%s" % (path, key), "may not be set for init containers without restartPolicy Always"))
    strategy = container.get("upgradeStrategy")
    if isinstance(strategy, dict):
        upgrade_type = strategy.get("upgradeType")
        if upgrade_type not in (COLD, HOT):
            errors.append(("%s.upgradeStrategy.upgradeType" % path, "%r must be %s or %s" % (upgrade_type, COLD, HOT)))
        elif upgrade_type == HOT:
            if not strategy.get("hotUpgradeEmptyImage"):
                errors.append(("%s.upgradeStrategy.hotUpgradeEmptyImage" % path,
                               "required when upgradeType is HotUpgrade"))
            if is_init and not native:
                errors.append(("%s.upgradeStrategy.upgradeType" % path,
                               "HotUpgrade is not possible on initContainers (only on containers and native "
                               "sidecar initContainers with restartPolicy Always)"))
    errors.extend(validate_resources_policy(container, path, is_init))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _check_handler(container.get(key), "%s.%s" % (path, key), ("exec", "httpGet", "tcpSocket", "grpc"), errors)
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for key in ("postStart", "preStop"):
            _check_handler(lifecycle.get(key), "%s.lifecycle.%s" % (path, key),
                           ("exec", "httpGet", "tcpSocket", "sleep"), errors)
    _validate_env(container, path, errors)
    _validate_ports(container, path, errors)
    _validate_mounts(container, path, volume_names, errors)
    _validate_transfer_env(container, path, errors)


def _validate_update_strategy(spec, init_containers, errors):
    strategy = spec.get("updateStrategy")
    if not isinstance(strategy, dict):
        errors.append(("spec.updateStrategy", "must be a mapping"))
        return
    _unknown_fields(strategy, UPDATE_STRATEGY_FIELDS, "spec.updateStrategy", errors)
    strategy_type = strategy.get("type")
    if strategy_type not in ("RollingUpdate", "NotUpdate"):
        errors.append(("spec.updateStrategy.type", "%r must be RollingUpdate or NotUpdate" % (strategy_type,)))
    if strategy.get("paused") is not None and not isinstance(strategy.get("paused"), bool):
        errors.append(("spec.updateStrategy.paused", "must be a boolean"))
    selector = strategy.get("selector")
    if selector is not None:
        if _is_empty_selector(selector):
            errors.append(("spec.updateStrategy.selector", "must not be empty when set"))
        errors.extend(validate_label_selector(selector, "spec.updateStrategy.selector"))
    _check_int_or_percent(strategy.get("partition"), "spec.updateStrategy.partition", errors)
    _check_int_or_percent(strategy.get("maxUnavailable"), "spec.updateStrategy.maxUnavailable", errors)
    if strategy_type == "RollingUpdate":
        if selector is not None and not _is_zero_int_or_percent(strategy.get("partition")):
            errors.append(("spec.updateStrategy.partition", "cannot be used together with updateStrategy.selector"))
        for index, container in enumerate(init_containers):
            if isinstance(container, dict) and container.get("restartPolicy") == "Always":
                errors.append(("spec.initContainers[%d].restartPolicy" % index,
                               "native sidecar initContainers (restartPolicy Always) need updateStrategy.type "
                               "NotUpdate: the initContainer in-place upgrade is not currently supported"))
    priority = strategy.get("priorityStrategy")
    if priority is not None:
        _validate_priority(priority, errors)
    scatter = strategy.get("scatterStrategy")
    if scatter is not None:
        _validate_scatter(scatter, errors)


def _validate_priority(priority, errors):
    path = "spec.updateStrategy.priorityStrategy"
    if not isinstance(priority, dict):
        errors.append((path, "must be a mapping"))
        return
    _unknown_fields(priority, ("weightPriority", "orderPriority"), path, errors)
    if priority.get("weightPriority") and priority.get("orderPriority"):
        errors.append((path, "weightPriority and orderPriority cannot both be set"))
    for index, term in enumerate(_items(priority.get("weightPriority"))):
        tpath = "%s.weightPriority[%d]" % (path, index)
        if not isinstance(term, dict):
            errors.append((tpath, "must be a mapping"))
            continue
        weight = term.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            errors.append(("%s.weight" % tpath, "must be an integer between 0 and 100"))
        if _is_empty_selector(term.get("matchSelector")):
            errors.append(("%s.matchSelector" % tpath, "required"))
        errors.extend(validate_label_selector(term.get("matchSelector"), "%s.matchSelector" % tpath))
    for index, term in enumerate(_items(priority.get("orderPriority"))):
        tpath = "%s.orderPriority[%d]" % (path, index)
        key = term.get("orderedKey") if isinstance(term, dict) else None
        for problem in validate_qualified_name(key):
            errors.append(("%s.orderedKey" % tpath, problem))


def _validate_scatter(scatter, errors):
    path = "spec.updateStrategy.scatterStrategy"
    if not isinstance(scatter, list):
        errors.append((path, "must be a list of {key, value}"))
        return
    seen = set()
    for index, term in enumerate(scatter):
        tpath = "%s[%d]" % (path, index)
        if not isinstance(term, dict):
            errors.append((tpath, "must be a mapping with key and value"))
            continue
        if not term.get("key"):
            errors.append(("%s.key" % tpath, "must not be empty"))
        if not term.get("value"):
            errors.append(("%s.value" % tpath, "must not be empty"))
        pair = (str(term.get("key")), str(term.get("value")))
        if pair in seen:
            errors.append((tpath, "duplicate term %s=%s" % pair))
        seen.add(pair)


def _validate_patch_metadata(spec, errors):
    patches = spec.get("patchPodMetadata")
    if patches is None:
        return
    if not isinstance(patches, list):
        errors.append(("spec.patchPodMetadata", "must be a list"))
        return
    seen = {}
    for index, patch in enumerate(patches):
        path = "spec.patchPodMetadata[%d]" % index
        if not isinstance(patch, dict):
            errors.append((path, "must be a mapping"))
            continue
        _unknown_fields(patch, PATCH_FIELDS, path, errors)
        annotations = patch.get("annotations")
        policy = patch.get("patchPolicy")
        if policy not in PATCH_POLICIES:
            errors.append(("%s.patchPolicy" % path, "%r must be one of %s" % (policy, ", ".join(PATCH_POLICIES))))
        if not annotations or not isinstance(annotations, dict):
            errors.append(("%s.annotations" % path, "required (a non-empty mapping)"))
            continue
        for key, value in annotations.items():
            if key in seen:
                errors.append(("%s.annotations.%s" % (path, key), "key repeated (also in %s)" % seen[key]))
            else:
                seen[key] = path
            for problem in validate_qualified_name(key):
                errors.append(("%s.annotations" % path, "invalid annotation key %r: %s" % (key, problem)))
            if not isinstance(value, str):
                errors.append(("%s.annotations.%s" % (path, key), "value must be a string"))
            elif policy == "MergePatchJson":
                try:
                    json.loads(value)
                except ValueError:
                    errors.append(("%s.annotations.%s" % (path, key), "MergePatchJson value must be valid JSON"))


def _validate_injection_strategy(spec, errors):
    injection = spec.get("injectionStrategy")
    if injection is None:
        return
    if not isinstance(injection, dict):
        errors.append(("spec.injectionStrategy", "must be a mapping"))
        return
    _unknown_fields(injection, INJECTION_STRATEGY_FIELDS, "spec.injectionStrategy", errors)
    if injection.get("paused") is not None and not isinstance(injection.get("paused"), bool):
        errors.append(("spec.injectionStrategy.paused", "must be a boolean"))
    revision = injection.get("revision")
    if revision is not None:
        if not isinstance(revision, dict):
            errors.append(("spec.injectionStrategy.revision", "must be a mapping"))
            return
        _unknown_fields(revision, REVISION_FIELDS, "spec.injectionStrategy.revision", errors)
        if not revision.get("revisionName") and not revision.get("customVersion"):
            errors.append(("spec.injectionStrategy.revision", "revisionName or customVersion is required"))
        if revision.get("policy") not in ("Always", "Partial"):
            errors.append(("spec.injectionStrategy.revision.policy", "must be Always or Partial"))


def _validate_volumes(spec, errors):
    names = set()
    volumes = spec.get("volumes")
    if volumes is None:
        return names
    if not isinstance(volumes, list):
        errors.append(("spec.volumes", "must be a list"))
        return names
    for index, volume in enumerate(volumes):
        path = "spec.volumes[%d]" % index
        if not isinstance(volume, dict):
            errors.append((path, "must be a mapping"))
            continue
        name = volume.get("name")
        if not name or not isinstance(name, str) or len(name) > 63 or not _DNS1123_LABEL_RE.match(name):
            errors.append(("%s.name" % path, "%r must be a valid DNS-1123 label" % (name,)))
        elif name in names:
            errors.append(("%s.name" % path, "duplicate volume name %r" % name))
        else:
            names.add(name)
        sources = [key for key in VOLUME_SOURCES if key in volume]
        if len(sources) > 1:
            errors.append((path, "may not specify more than 1 volume type (got %s)" % ", ".join(sources)))
        for key in volume:
            if key != "name" and key not in VOLUME_SOURCES:
                errors.append(("%s.%s" % (path, key), "unknown field"))
    return names


def validate_sidecarset(obj):
    """Validate a converted, defaulted v1beta1 SidecarSet; return ``[(field_path, message), ...]``."""
    errors = []
    for key in obj:
        if key not in OBJECT_FIELDS:
            errors.append((str(key) if key != "" else '""', "unknown field"))
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not name:
        errors.append(("metadata.name", "required"))
    elif not isinstance(name, str) or len(name) > 63 or not _SIDECARSET_NAME_RE.match(name):
        errors.append(("metadata.name", "%r must match ^[a-zA-Z0-9\\-]+$ and be at most 63 characters" % (name,)))
    elif not _DNS1123_SUBDOMAIN_RE.match(name):
        errors.append(("metadata.name", "%r must be a lowercase RFC 1123 name" % name))
    spec = obj.get("spec")
    for key in spec:
        if key not in SPEC_FIELDS_V1BETA1 and key != "namespace":
            hint = difflib.get_close_matches(str(key), list(SPEC_FIELDS_V1BETA1), n=1)
            errors.append(("spec.%s" % key, "unknown field%s" % ((" (did you mean %r?)" % hint[0]) if hint else "")))
    selector = spec.get("selector")
    if selector is None or _is_empty_selector(selector):
        errors.append(("spec.selector", "required and must not be empty (an empty selector never matches)"))
    errors.extend(validate_label_selector(selector, "spec.selector"))
    ns_selector = spec.get("namespaceSelector")
    if ns_selector is not None:
        if _is_empty_selector(ns_selector):
            errors.append(("spec.namespaceSelector", "must not be empty when set"))
        errors.extend(validate_label_selector(ns_selector, "spec.namespaceSelector"))
    volume_names = _validate_volumes(spec, errors)
    lists = {}
    for key in ("initContainers", "containers"):
        value = spec.get(key)
        if value is not None and not isinstance(value, list):
            errors.append(("spec.%s" % key, "must be a list"))
            value = []
        lists[key] = value or []
    if not lists["initContainers"] and not lists["containers"]:
        errors.append(("spec.containers", "at least one container or initContainer is required"))
    seen = {}
    for key in ("initContainers", "containers"):
        for index, container in enumerate(lists[key]):
            path = "spec.%s[%d]" % (key, index)
            _validate_container(container, path, key == "initContainers", volume_names, errors)
            if isinstance(container, dict) and isinstance(container.get("name"), str) and container["name"]:
                cname = container["name"]
                if cname in seen:
                    errors.append(("%s.name" % path, "duplicate container name %r (also %s)" % (cname, seen[cname])))
                else:
                    seen[cname] = path
    for key in ("initContainers", "containers"):
        for index, container in enumerate(lists[key]):
            if is_hot_upgrade(container) and isinstance(container.get("name"), str):
                for twin in hot_upgrade_names(container["name"]):
                    if twin in seen:
                        errors.append(("spec.%s[%d].name" % (key, index), "HotUpgrade twin name %r clashes with %s"
                                       % (twin, seen[twin])))
    _validate_update_strategy(spec, lists["initContainers"], errors)
    _validate_injection_strategy(spec, errors)
    _validate_patch_metadata(spec, errors)
    secrets = spec.get("imagePullSecrets")
    if secrets is not None:
        if not isinstance(secrets, list):
            errors.append(("spec.imagePullSecrets", "must be a list"))
        else:
            for index, secret in enumerate(secrets):
                if not isinstance(secret, dict) or not secret.get("name"):
                    errors.append(("spec.imagePullSecrets[%d].name" % index, "required"))
    limit = spec.get("revisionHistoryLimit")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        errors.append(("spec.revisionHistoryLimit", "must be a non-negative integer"))
    if spec.get("customVersion") is not None and not isinstance(spec.get("customVersion"), str):
        errors.append(("spec.customVersion", "must be a string"))
    return errors


# ---------------------------------------------------------------- normalisation


def _drop_stale_revision(result, recorded_hash, hash_value):
    """``status.latestRevision`` names the ControllerRevision Kruise made for the spec it last saw, and the pods get it
    as ``controllerRevision``. A SidecarSet exported from a cluster with Kruise and edited afterwards (a new image,
    docs/kruise-migration.md) still carries it, and the ``kruise.io/sidecarset-hash`` Kruise's webhook wrote for the
    old spec: the revision is kept only while that hash is ours and Kruise observed this generation."""
    status = result.get("status")
    if not isinstance(status, dict) or not status.get("latestRevision"):
        return
    generation = (result.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if (recorded_hash and recorded_hash != hash_value) or (generation is not None and observed is not None and observed != generation):
        result["status"] = dict(status)
        del result["status"]["latestRevision"]


def normalize_sidecarset(obj, source=None, document=None):
    """Convert to v1beta1, apply defaults, validate and hash; return a new dict (see module docstring)."""
    if not isinstance(obj, dict):
        raise SidecarSetError([("", "a SidecarSet must be a mapping, got %s" % type(obj).__name__)],
                              source=source, document=document)
    problem = structure_problem(obj)
    if problem:
        raise SidecarSetError([problem], source=source, document=document)
    result = clone(obj)
    metadata = result.get("metadata")
    if metadata is None:
        metadata = result["metadata"] = {}
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(metadata, dict):
        raise SidecarSetError([("metadata", "must be a mapping")], source=source, document=document)
    spec = result.get("spec")
    if not isinstance(spec, dict):
        raise SidecarSetError([("spec", "required (a mapping)")], sidecarset=name, source=source, document=document)
    errors = []
    _convert_to_v1beta1(result, errors)
    _apply_defaults(result)
    errors.extend(validate_sidecarset(result))
    if errors:
        raise SidecarSetError(errors, sidecarset=name, source=source, document=document)
    hash_value, hash_without_image = sidecarset_hashes(result)
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict):
        annotations = metadata["annotations"] = {}
    _drop_stale_revision(result, annotations.get(SIDECARSET_HASH), hash_value)
    annotations[SIDECARSET_HASH] = hash_value
    annotations[SIDECARSET_HASH_WITHOUT_IMAGE] = hash_without_image
    ordered = {}
    for key in ("apiVersion", "kind", "metadata", "spec"):
        ordered[key] = result[key]
    for key in result:
        ordered.setdefault(key, result[key])
    return ordered


# ---------------------------------------------------------------- accessors


def sidecarset_name(sidecarset):
    """Return ``metadata.name`` (``""`` when unset)."""
    return ((sidecarset or {}).get("metadata") or {}).get("name") or ""


def sidecar_containers(sidecarset):
    """Return ``spec.containers`` (list of SidecarContainer dicts)."""
    return ((sidecarset or {}).get("spec") or {}).get("containers") or []


def update_strategy(sidecarset):
    """Return ``spec.updateStrategy`` (never ``None``)."""
    return ((sidecarset or {}).get("spec") or {}).get("updateStrategy") or {}


def is_hot_upgrade(container):
    """True when the container's ``upgradeStrategy.upgradeType`` is HotUpgrade."""
    if not isinstance(container, dict):
        return False
    strategy = container.get("upgradeStrategy")
    return isinstance(strategy, dict) and strategy.get("upgradeType") == HOT


def hot_sidecars(sidecarset):
    """Return the ``spec.containers`` entries with HotUpgrade."""
    return [c for c in sidecar_containers(sidecarset) if is_hot_upgrade(c)]


def empty_image(container):
    """Return ``upgradeStrategy.hotUpgradeEmptyImage`` (or ``None``)."""
    return ((container or {}).get("upgradeStrategy") or {}).get("hotUpgradeEmptyImage")


def _annotation(sidecarset, key):
    return (((sidecarset or {}).get("metadata") or {}).get("annotations") or {}).get(key)


def get_hash(sidecarset):
    """Return the SidecarSet's ``kruise.io/sidecarset-hash`` annotation."""
    return _annotation(sidecarset, SIDECARSET_HASH)


def get_hash_without_image(sidecarset):
    """Return the SidecarSet's ``kruise.io/sidecarset-hash-without-image`` annotation."""
    return _annotation(sidecarset, SIDECARSET_HASH_WITHOUT_IMAGE)
