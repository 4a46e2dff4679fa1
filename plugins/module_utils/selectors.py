# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes label selectors (``metav1.LabelSelector``) as plain dicts: matching, validation, string form.

``match_label_selector`` has Kubernetes semantics (``LabelSelectorAsSelector``): ``None`` matches nothing,
an empty selector ``{}`` matches everything. The SidecarSet-specific rules (an empty ``spec.selector``
never matches, a ``None`` namespaceSelector matches every namespace) are applied by the callers through
``is_empty_selector``; see ``inject.CompiledSidecarSet.matches``.

Namespace selection has one implementation here: ``namespace_labels(name, labels)`` completes a namespace's
labels as every supported API server stores them (``kubernetes.io/metadata.name`` = its name, set by the
NamespaceDefaultLabelName admission since 1.21, GA), and ``select_namespaces(namespaces, selector)`` applies a
SidecarSet's ``namespaceSelector`` to namespace objects. Online, offline and the inventory all use them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.meshops.sidecarset.plugins.module_utils.annotations import NAMESPACE_NAME_LABEL

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SELECTOR_KEYS = ("matchLabels", "matchExpressions")
_EXPRESSION_KEYS = ("key", "operator", "values")


def is_empty_selector(selector):
    """True when ``selector`` is ``None`` or has neither matchLabels nor matchExpressions."""
    if not selector:
        return True
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def match_label_selector(selector, labels):
    """Return True when ``labels`` satisfy ``selector`` (Kubernetes semantics).

    ``None`` matches nothing; ``{}`` (no requirements) matches everything. An unknown operator never matches.
    """
    return compile_label_selector(selector)(labels)


def compile_label_selector(selector):
    """Return a fast predicate ``f(labels) -> bool`` equivalent to ``match_label_selector(selector, labels)``."""
    if selector is None:
        return lambda labels: False
    match_labels = tuple((selector.get("matchLabels") or {}).items())
    expressions = tuple(
        (e.get("key"), e.get("operator"), frozenset(str(v) for v in (e.get("values") or ())))
        for e in (selector.get("matchExpressions") or ())
    )

    def predicate(labels):
        labels = labels or {}
        for key, value in match_labels:
            if labels.get(key) != value:
                return False
        for key, operator, values in expressions:
            present = key in labels
            if operator == "In":
                if not present or labels[key] not in values:
                    return False
            elif operator == "NotIn":
                if present and labels[key] in values:
                    return False
            elif operator == "Exists":
                if not present:
                    return False
            elif operator == "DoesNotExist":
                if present:
                    return False
            else:
                return False  # an unknown operator never matches
        return True

    return predicate


def validate_qualified_name(value):
    """Return a list of problems with a label key / qualified name (``[prefix/]name``); empty when valid."""
    if not isinstance(value, str) or not value:
        return ["must be a non-empty string"]
    problems = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            problems.append("prefix part must be non-empty")
        elif len(prefix) > 253 or not _DNS1123_SUBDOMAIN_RE.match(prefix):
            problems.append("prefix part %r must be a lowercase RFC 1123 subdomain" % prefix)
    else:
        return ["a qualified name must consist of an optional DNS subdomain prefix and a name separated by '/'"]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    elif not _NAME_RE.match(name):
        problems.append("name part %r must consist of alphanumeric characters, '-', '_' or '.', "
                        "and must start and end with an alphanumeric character" % name)
    return problems


def validate_label_value(value):
    """Return a list of problems with a label value; empty when valid."""
    if not isinstance(value, str):
        return ["label value must be a string (quote it in YAML), got %s" % type(value).__name__]
    if value == "":
        return []
    if len(value) > 63:
        return ["must be no more than 63 characters"]
    if not _NAME_RE.match(value):
        return ["%r must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                "alphanumeric character" % value]
    return []


def validate_label_selector(selector, path):
    """Validate a LabelSelector dict; return ``[(field_path, message), ...]`` (empty when valid)."""
    errors = []
    if selector is None:
        return errors
    if not isinstance(selector, dict):
        return [(path, "must be a mapping with matchLabels and/or matchExpressions")]
    for key in selector:
        if key not in _SELECTOR_KEYS:
            errors.append(("%s.%s" % (path, key), "unknown field (expected matchLabels or matchExpressions)"))
    match_labels = selector.get("matchLabels")
    if match_labels is not None:
        if not isinstance(match_labels, dict):
            errors.append(("%s.matchLabels" % path, "must be a mapping of label keys to values"))
        else:
            for key, value in match_labels.items():
                for problem in validate_qualified_name(key):
                    errors.append(("%s.matchLabels" % path, "invalid label key %r: %s" % (key, problem)))
                for problem in validate_label_value(value):
                    errors.append(("%s.matchLabels.%s" % (path, key), "invalid label value: %s" % problem))
    expressions = selector.get("matchExpressions")
    if expressions is not None:
        if not isinstance(expressions, list):
            errors.append(("%s.matchExpressions" % path, "must be a list"))
            expressions = []
        for index, expr in enumerate(expressions):
            epath = "%s.matchExpressions[%d]" % (path, index)
            if not isinstance(expr, dict):
                errors.append((epath, "must be a mapping with key, operator and values"))
                continue
            for key in expr:
                if key not in _EXPRESSION_KEYS:
                    errors.append(("%s.%s" % (epath, key), "unknown field (expected key, operator, values)"))
            for problem in validate_qualified_name(expr.get("key")):
                errors.append(("%s.key" % epath, problem))
            operator = expr.get("operator")
            values = expr.get("values")
            if operator not in OPERATORS:
                errors.append(("%s.operator" % epath, "%r is not a valid selector operator (expected one of %s)"
                               % (operator, ", ".join(OPERATORS))))
            elif operator in ("In", "NotIn"):
                if not values:
                    errors.append(("%s.values" % epath, "must be specified when operator is In or NotIn"))
            elif values:
                errors.append(("%s.values" % epath, "may not be specified when operator is Exists or DoesNotExist"))
            if values is not None and not isinstance(values, list):
                errors.append(("%s.values" % epath, "must be a list"))
            elif values:
                for vindex, value in enumerate(values):
                    for problem in validate_label_value(value):
                        errors.append(("%s.values[%d]" % (epath, vindex), problem))
    return errors


def selector_to_string(selector):
    """Render a LabelSelector in the ``label_selector`` string syntax of the Kubernetes list API.

    Requirements are sorted by key (as ``labels.Selector.String()`` does), values sorted. ``None`` and ``{}``
    give ``""`` (callers must not list with a ``None`` selector, which matches nothing).
    """
    if not selector:
        return ""
    requirements = []
    for key, value in (selector.get("matchLabels") or {}).items():
        requirements.append((key, "%s=%s" % (key, value)))
    for expr in selector.get("matchExpressions") or ():
        key = expr.get("key")
        operator = expr.get("operator")
        values = ",".join(sorted(str(v) for v in (expr.get("values") or ())))
        if operator in ("In", "NotIn"):
            requirements.append((key, "%s %s (%s)" % (key, operator.lower(), values)))
        elif operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, "!%s" % key))
        else:
            raise ValueError("unsupported selector operator %r" % operator)
    requirements.sort(key=lambda item: item[0])
    return ",".join(item[1] for item in requirements)


def namespace_labels(name, labels=None):
    """The labels of namespace ``name`` as the API server stores them: ``labels`` plus
    ``kubernetes.io/metadata.name: <name>`` (the server always sets that label to the name)."""
    out = dict(labels or {})
    out[NAMESPACE_NAME_LABEL] = name
    return out


def select_namespaces(namespaces, selector):
    """Sorted names of the namespace objects that ``selector`` (a SidecarSet's ``namespaceSelector``) selects;
    ``None`` or an empty selector selects every namespace."""
    out = []
    for ns in namespaces:
        meta = ns.get("metadata") or {}
        if is_empty_selector(selector) or match_label_selector(selector, namespace_labels(meta.get("name"), meta.get("labels"))):
            out.append(meta.get("name"))
    return sorted(out)
