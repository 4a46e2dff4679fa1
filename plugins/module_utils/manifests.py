# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Workload manifests: find the pod template, parse and dump multi-document YAML, inject SidecarSets offline.

* ``pod_template_path(kind)``: the key path of the pod template (``("spec", "template")`` for Deployment,
  StatefulSet, DaemonSet, ReplicaSet, ReplicationController and Job; ``("spec", "jobTemplate", "spec",
  "template")`` for CronJob; ``("template",)`` for PodTemplate; ``()`` for a Pod; ``None`` otherwise).
* ``iter_documents(text, source)`` yields the mapping documents of a multi-document YAML text, expanding
  ``kind: List``; errors are ``ManifestError`` naming the file, the document index and the line. A document
  nested too deeply, containing itself or expanding to too many values through aliases is refused
  (``sidecarset.structure_problem``).
* ``inject_manifest(doc, sidecarsets, namespace_labels=None, now=None) -> (new_doc, status, reason)`` with status
  ``injected``, ``unchanged`` or ``skipped``. ``namespace_labels`` maps namespace names to their labels
  (``{"shop": {"mesh": "enabled"}}``); every namespace also has ``kubernetes.io/metadata.name``. The document's
  namespace is ``metadata.namespace`` or ``default``. The input document is never mutated. A pod template that
  injection cannot read (``template_problem``: a container that is not a mapping, labels that are not strings,
  ...) raises ``ManifestError`` naming the field.
* ``dump_documents(docs)`` renders documents as block-style YAML, key order preserved, ``---`` separated.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import AnnotationError, ManifestError
from ansible_collections.meshops.sidecarset.plugins.module_utils.inject import inject_pod
from ansible_collections.meshops.sidecarset.plugins.module_utils.kinds import get_path, kind_info
from ansible_collections.meshops.sidecarset.plugins.module_utils.resources import ResourcesPolicyRefusal
from ansible_collections.meshops.sidecarset.plugins.module_utils.selectors import namespace_labels as namespace_labels_of
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import (
    YamlProblem,
    check_struct,
    read_yaml,
    require_yaml,
    structure_problem,
    yaml,
)


def pod_template_path(kind):
    """Return the key path of the pod template of ``kind`` (``()`` for a Pod), or ``None`` if it has none."""
    info = kind_info(kind)
    return info.template_path if info else None


def iter_documents(text, source=None, default_kind=None):
    """Yield the documents (dicts) of a multi-document YAML text; ``kind: List`` items are yielded one by one.

    Empty documents are skipped. Raises ``ManifestError`` (file, document index, line) on a syntax error or a
    document that is not a mapping with a ``kind`` (one without the key has ``default_kind``). The loader loop is
    ``sidecarset.read_yaml``.
    """
    require_yaml(ManifestError)
    documents = read_yaml(text)
    while True:
        try:
            index, line, data = next(documents)
        except StopIteration:
            return
        except YamlProblem as exc:
            raise ManifestError(_problem_text(exc), source=source, document=exc.document, field=exc.field or None,
                                line=_problem_line(exc))
        if data is not None:
            for item_index, item in _expand(data, source, index, line):
                _check_document(item, source, index, line, item_index, default_kind)
                yield item


def _problem_line(exc):
    if exc.what != "syntax":
        return exc.line
    mark = exc.exc.problem_mark or exc.exc.context_mark
    return mark.line + 1 if mark is not None else None


def _problem_text(exc):
    """``YAML syntax error at column C: <problem>`` plus the context (``while parsing ... at line L, column C``)."""
    if exc.what == "structure":
        return exc.message
    if exc.what != "syntax":
        return "YAML error: %s" % exc.message
    error = exc.exc
    mark = error.problem_mark or error.context_mark
    text = "YAML syntax error"
    if mark is not None:
        text += " at column %d" % (mark.column + 1)
    text += ": %s" % exc.message
    if error.context and error.problem and error.context_mark is not None:
        text += " (%s at line %d, column %d)" % (error.context, error.context_mark.line + 1, error.context_mark.column + 1)
    return text


def _expand(data, source, index, line):
    kind = str(data.get("kind") or "") if isinstance(data, dict) else ""
    if kind == "List" or (kind.endswith("List") and "items" in data):
        items = data.get("items") or []
        if not isinstance(items, list):
            raise ManifestError("items must be a list", source=source, document=index, field="items", line=line)
        return list(enumerate(items))
    return [(None, data)]


def _check_document(doc, source, index, line, item_index, default_kind=None):
    field = "items[%d]" % item_index if item_index is not None else None
    if not isinstance(doc, dict):
        raise ManifestError("document must be a mapping (a Kubernetes object), got %s" % type(doc).__name__,
                            source=source, document=index, field=field, line=line)
    kind = doc.get("kind", default_kind)
    if not kind or not isinstance(kind, str):
        raise ManifestError("must be a string" if kind else "kind is required", source=source,
                            document=index, field=(field + ".kind") if field else "kind", line=line)
    metadata = doc.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ManifestError("must be a mapping", source=source, document=index,
                            field=(field + ".metadata") if field else "metadata", line=line)


def _string_map_problem(value, path):
    if not isinstance(value, dict):
        return path, "must be a mapping of strings"
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            return "%s.%s" % (path, key), "must be a string (%s maps strings to strings)" % path.rsplit(".", 1)[-1]
    return None


def template_problem(template, prefix=""):
    """``(field_path, message)`` for the first part of a pod template that injection cannot read, else ``None``.

    Checks what ``inject_pod`` reads: labels and annotations (strings), the containers and init containers
    (types of the known Container fields, a name), volumes and image pull secrets (mappings with a name).
    Fields this collection does not know are left alone (manifests may be newer than it).
    """
    metadata = template.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return prefix + "metadata", "must be a mapping"
    for key in ("labels", "annotations"):
        value = (metadata or {}).get(key)
        problem = _string_map_problem(value, "%smetadata.%s" % (prefix, key)) if value is not None else None
        if problem:
            return problem
    spec = template.get("spec")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        return prefix + "spec", "must be a mapping"
    errors = []
    for key, check in (("containers", "Container"), ("initContainers", "Container"), ("volumes", None),
                       ("imagePullSecrets", None)):
        items = spec.get(key)
        path = "%sspec.%s" % (prefix, key)
        if items is None:
            continue
        if not isinstance(items, list):
            return path, "must be a list"
        for index, item in enumerate(items):
            item_path = "%s[%d]" % (path, index)
            if not isinstance(item, dict):
                return item_path, "must be a mapping"
            if check:
                check_struct(item, check, item_path, errors, strict=False)
            if not isinstance(item.get("name"), str):
                errors.append((item_path + ".name", "required (a string)"))
            if errors:
                return errors[0]
    return None


def _namespace_labels_for(namespace, namespace_labels):
    extra = (namespace_labels or {}).get(namespace)
    return namespace_labels_of(namespace, extra if isinstance(extra, dict) else None)


def inject_manifest(doc, sidecarsets, namespace_labels=None, now=None):
    """Inject into one manifest document; return ``(new_doc, status, reason)`` (see module docstring)."""
    if not isinstance(doc, dict):
        return doc, "skipped", "document is not a mapping"
    kind = doc.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise ManifestError("must be a string", field="kind")
    path = pod_template_path(kind)
    if path is None:
        return doc, "skipped", "kind %s has no pod template" % kind
    template = get_path(doc, path)
    if not isinstance(template, dict):
        return doc, "skipped", "%s has no %s" % (kind, ".".join(path))
    metadata = doc.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ManifestError("must be a mapping", field="metadata")
    namespace = (metadata or {}).get("namespace") or "default"
    if not isinstance(namespace, str):
        raise ManifestError("must be a string", field="metadata.namespace")
    prefix = "".join(key + "." for key in path)
    problem = structure_problem(template) or template_problem(template, prefix)
    if problem:
        raise ManifestError(problem[1], field=problem[0] or ".".join(path) or None)
    pod_like = {"metadata": template.get("metadata") or {}, "spec": template.get("spec") or {}}
    try:
        new_pod, names = inject_pod(pod_like, sidecarsets, namespace=namespace,
                                    namespace_labels=_namespace_labels_for(namespace, namespace_labels), now=now)
    except AnnotationError as exc:  # a Kruise annotation of the template that is not in Kruise's format
        raise ManifestError(str(exc), field=prefix + "metadata.annotations")
    except ResourcesPolicyRefusal as exc:  # Kruise's webhook refuses such a pod: name the document too
        raise ManifestError(str(exc), field=prefix + "spec.containers")
    labels = pod_like["metadata"].get("labels") or {}
    changed = new_pod["metadata"] != pod_like["metadata"] or new_pod["spec"] != pod_like["spec"]
    if not changed:
        if names:
            return doc, "unchanged", "already up to date with SidecarSet(s) %s" % ", ".join(names)
        return doc, "skipped", "no SidecarSet matches labels %s in namespace %s" % (_labels_text(labels), namespace)
    new_doc = new_template = dict(template, metadata=new_pod["metadata"], spec=new_pod["spec"])
    if path:  # copy the nodes on the way to the template (a Pod is its own template)
        new_doc = node = dict(doc)
        for key in path[:-1]:
            node[key] = dict(node[key])
            node = node[key]
        node[path[-1]] = new_template
    if names:
        return new_doc, "injected", "injected SidecarSet(s) %s" % ", ".join(names)
    return new_doc, "injected", "removed SidecarSet(s) that no longer match labels %s" % _labels_text(labels)


def _labels_text(labels):
    return "{%s}" % ", ".join("%s: %s" % (k, labels[k]) for k in sorted(labels))


_DUMPER_CLASS = []


def _dumper():
    """A safe dumper that never emits anchors/aliases and writes ``str``/``dict``/``list`` subclasses plainly."""
    if not _DUMPER_CLASS:
        class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # pylint: disable=too-many-ancestors
            def ignore_aliases(self, data):
                return True

        _Dumper.add_multi_representer(str, lambda dumper, data: dumper.represent_str(str(data)))
        _Dumper.add_multi_representer(dict, lambda dumper, data: dumper.represent_dict(dict(data)))
        _Dumper.add_multi_representer(list, lambda dumper, data: dumper.represent_list(list(data)))
        _DUMPER_CLASS.append(_Dumper)
    return _DUMPER_CLASS[0]


def dump_documents(docs):
    """Render documents as block-style YAML (key order preserved), separated by ``---`` lines."""
    require_yaml(ManifestError)
    dumper = _dumper()
    parts = []
    for doc in docs:
        parts.append(yaml.dump(doc, Dumper=dumper, sort_keys=False, default_flow_style=False,
                               allow_unicode=True, width=1 << 30))
    return "---\n".join(parts)
