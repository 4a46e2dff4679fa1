# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property-based fuzz of the SidecarSet and manifest loaders (issue 11, "Robustness, measured").

Generated documents: mutations of the valid SidecarSets and manifests of ``examples/`` and ``tests/unit/fixtures``
(wrong types at any path, deleted and unknown keys, non-string keys, huge and deeply nested values, cycles and
alias bombs through YAML), and bad YAML text. Property: the loaders raise only the collection's own errors
(``SidecarSetError``, ``ManifestError``), each naming a field path or a file and line, never another exception
(``TypeError``, ``AttributeError``, ``KeyError``, ``RecursionError``, ...).

Reproducible (``derandomize=True``, no example database). The last test checks that at least 10,000 documents
were generated, prints the figures (even without ``-s``) and writes them to ``loader-fuzz.json`` in pytest's
base temporary directory. ``MESHOPS_FUZZ_SCALE=4`` multiplies the examples of every target;
``MESHOPS_FUZZ_COLLECT=1`` records foreign exceptions (type and raising line) instead of failing at the first one,
and the last test lists them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import marshal
import os
import re
import tempfile
import time
import traceback

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")

# pylint: disable=wrong-import-position
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ManifestError, SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.hashing import STRUCTS
from ansible_collections.meshops.sidecarset.plugins.module_utils.manifests import inject_manifest, iter_documents
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import (
    load_sidecarsets,
    normalize_sidecarset,
    parse_sidecarset_yaml,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
SCALE = max(0.001, float(os.environ.get("MESHOPS_FUZZ_SCALE", "1")))
COLLECT = os.environ.get("MESHOPS_FUZZ_COLLECT") == "1"
EXAMPLES = {  # examples per target; each example holds 1 to 3 generated documents (about 2 on average)
    "sidecarset_dict": 1400,
    "sidecarset_yaml": 1300,
    "manifest_yaml": 1300,
    "manifest_inject": 1300,
}
MINIMUM = 10000
# hypothesis keeps caches (constants, unicode data) in .hypothesis/: not in the checkout
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "meshops-sidecarset-hypothesis"))
STATS = {"documents": {}, "seconds": {}, "wall": {}, "errors": {}, "foreign": {}, "placeless": {}}


def fuzz_settings(target):
    phases = [Phase.explicit, Phase.generate] if COLLECT else [Phase.explicit, Phase.generate, Phase.shrink]
    return settings(max_examples=max(1, int(EXAMPLES[target] * SCALE)), deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=True, phases=phases)


# ---------------------------------------------------------------- seeds


def _documents(pattern):
    docs = []
    for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
        try:
            with open(path, encoding="utf-8") as handle:
                docs.extend(d for d in yaml.safe_load_all(handle) if isinstance(d, dict))
        except yaml.YAMLError:
            continue  # the deliberately broken fixtures
    return docs


_ALL = _documents("examples/sidecarsets/*.yaml") + _documents("examples/manifests/*.yaml") + _documents("tests/unit/fixtures/*.yaml")
SIDECARSET_SEEDS = [d for d in _ALL if d.get("kind") == "SidecarSet"]
VALID_SIDECARSETS = load_sidecarsets([os.path.join(ROOT, "examples", "sidecarsets")])
SIDECARSET_SEEDS += VALID_SIDECARSETS  # normalised forms are valid input too


def _workload_variants(deployment):
    template = deployment["spec"]["template"]
    meta = {"name": "v", "namespace": "shop", "labels": {"app": "v"}}
    return [
        {"apiVersion": "v1", "kind": "Pod", "metadata": dict(meta, labels=template["metadata"]["labels"]), "spec": template["spec"]},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": {"serviceName": "v", "template": template}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta, "spec": {"template": template}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {"template": template}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta, "spec": {"jobTemplate": {"spec": {"template": template}}}},
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": meta, "template": template},
    ]


MANIFEST_SEEDS = [d for d in _ALL if d.get("kind") != "SidecarSet"]
MANIFEST_SEEDS += [v for d in list(MANIFEST_SEEDS) if d.get("kind") == "Deployment" for v in _workload_variants(d)]
# an already injected document: its annotations (hash, injected list, working container, versions) get fuzzed too
MANIFEST_SEEDS += [inject_manifest(d, VALID_SIDECARSETS)[0] for d in list(MANIFEST_SEEDS) if d.get("kind") == "Deployment"]

FIELD_NAMES = sorted({name for fields in STRUCTS.values() for name, unused_kind, unused_sub in fields}
                     | {"apiVersion", "kind", "metadata", "spec", "name", "namespace", "labels", "annotations", "items",
                        "template", "jobTemplate", "containers", "initContainers", "volumes", "selector", "matchLabels",
                        "matchExpressions", "namespaceSelector", "updateStrategy", "upgradeStrategy", "injectionStrategy",
                        "patchPodMetadata", "priorityStrategy", "scatterStrategy", "partition", "maxUnavailable"})
INTERESTING_TEXT = ["", " ", "0", "1", "-1", "10%", "100%", "5 %", "true", "null", "Always", "HotUpgrade", "ColdUpgrade",
                    "BeforeAppContainer", "RollingUpdate", "NotUpdate", "In", "NotIn", "Exists", "DoesNotExist",
                    "apps.kruise.io/v1beta1", "apps.kruise.io/v1alpha1", "SidecarSet", "Deployment", "List", "v1",
                    "{", "{}", "[]", "{\"mosn\": \"mosn-1\"}", "{\"mosn\": {\"hash\": 1}}", "mosn", "mosn-1", "a" * 64,
                    "x" * 100000, "\u00e9\u4e2d\U0001f600", "a/b", "-", "metadata.labels['a']", "1Gi", "100m", "1e3",
                    "../../etc/passwd", "$(VAR)", "%s%d"]


# ---------------------------------------------------------------- strategies


def nested(depth, leaf, as_list):
    value = leaf
    for unused in range(depth):
        value = [value] if as_list else {"a": value}
    return value


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-2, max_value=70000),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(INTERESTING_TEXT),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8), st.integers(), st.none(), st.booleans())
values = st.recursive(scalars, lambda children: st.one_of(st.lists(children, max_size=4),
                                                          st.dictionaries(keys, children, max_size=4)), max_leaves=12)
deep_values = st.builds(nested, st.integers(min_value=40, max_value=3000), values, st.booleans())
huge_values = st.one_of(
    st.builds(lambda n, v: [v] * n, st.integers(min_value=1000, max_value=5000), values),
    st.builds(lambda n: {"k%d" % i: i for i in range(n)}, st.integers(min_value=1000, max_value=5000)),
)
# fresh objects on every draw (a mutation may later change them in place)
small_replacements = st.one_of(scalars, values, st.sampled_from([dict, list, lambda: [{}], lambda: [None], lambda: {"name": None}])
                               .map(lambda make: make()))
replacements = st.one_of(small_replacements, deep_values, huge_values)


def paths_of(value, limit=400):
    """Paths to the nodes of a JSON-like value (the root first, depth-first, at most ``limit``; not below depth 30)."""
    out = []
    stack = [((), value)]
    while stack and len(out) < limit:
        path, node = stack.pop()
        out.append(path)
        if len(path) < 30:
            items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            stack.extend(reversed([(path + (key,), child) for key, child in items]))
    return out


def clone(value):
    """A deep copy of JSON-like data, iterative (generated values nest deeper than Python's recursion limit)."""
    root = [None]
    stack = [(value, root, 0)]
    while stack:
        source, parent, key = stack.pop()
        if isinstance(source, dict):
            copy = parent[key] = dict.fromkeys(source)
            stack.extend((child, copy, k) for k, child in source.items())
        elif isinstance(source, list):
            copy = parent[key] = [None] * len(source)
            stack.extend((child, copy, i) for i, child in enumerate(source))
        else:
            parent[key] = source
    return root[0]


def _parent(doc, path):
    node = doc
    for key in path[:-1]:
        node = node[key]
    return node


def mutate(data, doc, replacements=replacements):
    """Apply 1 to 3 random mutations to a copy of ``doc``."""
    doc = marshal.loads(marshal.dumps(doc))  # the seeds are plain and shallow
    for unused in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
        paths = paths_of(doc)
        path = paths[data.draw(st.integers(min_value=0, max_value=len(paths) - 1), label="path")]
        action = data.draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "rename", "duplicate"]))
        if not path:
            if action == "replace":
                doc = data.draw(replacements)
            elif isinstance(doc, dict):
                doc[data.draw(keys)] = data.draw(replacements)
            continue
        parent, last = _parent(doc, path), path[-1]
        if action == "replace":
            parent[last] = data.draw(replacements, label="value")
        elif action == "delete":
            del parent[last]
        elif action == "add":
            node = parent[last]
            if isinstance(node, dict):
                node[data.draw(keys, label="key")] = data.draw(replacements, label="value")
            elif isinstance(node, list):
                node.insert(data.draw(st.integers(min_value=0, max_value=len(node))), data.draw(replacements, label="value"))
        elif action == "rename" and isinstance(parent, dict):
            value = parent.pop(last)
            parent[data.draw(keys, label="new key")] = value
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(last, clone(parent[last]))
    return doc


DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
YAML_SNIPPETS = [
    "\t", ":", ": ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "&b [*b]", "!!python/object:os.system ", "!!binary ",
    "!!float ", "? ", "|", ">", "'", "\"", "#", "%YAML 1.1\n", "---\n", "...\n", "\n", "\n  ", "\x00", "\ufeff",
    "\ud800", "\x85", "<<: *a\n", "key: &k {x: *k}\n", "~", "0x1F", "1e999", ".nan", "2001-12-14t21:59:43.10-05:00",
]


def yaml_text(data, doc):
    """A mutated document dumped as YAML, then (often) damaged as text."""
    try:
        text = yaml.dump(doc, Dumper=DUMPER, sort_keys=False, default_flow_style=data.draw(st.booleans(), label="flow"))
    except (yaml.YAMLError, RecursionError, ValueError, TypeError):
        text = "kind: SidecarSet\n"
    for unused in range(data.draw(st.integers(min_value=0, max_value=4), label="text mutations")):
        position = data.draw(st.integers(min_value=0, max_value=len(text)), label="position")
        action = data.draw(st.sampled_from(["insert", "insert", "delete", "delete", "replace", "replace", "prefix", "bomb",
                                            "deep"]))
        snippet = data.draw(st.one_of(st.sampled_from(YAML_SNIPPETS), st.text(max_size=4)), label="snippet")
        if action == "insert":
            text = text[:position] + snippet + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + data.draw(st.integers(min_value=1, max_value=20)):]
        elif action == "replace":
            text = text[:position] + snippet + text[position + len(snippet):]
        elif action == "prefix":
            text = snippet + text
        elif action == "bomb":  # aliases that expand exponentially when copied
            levels = data.draw(st.integers(min_value=2, max_value=7), label="levels")  # 10**7 values: refused
            bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
                "a%d: &a%d [%s]\n" % (i, i, ", ".join(["*a%d" % (i - 1)] * 10)) for i in range(1, levels))
            text = text + "\n" + bomb if data.draw(st.booleans()) else bomb
        else:
            depth = data.draw(st.integers(min_value=50, max_value=3000), label="depth")
            text = text[:position] + "[" * depth + "]" * depth + text[position:]
    return text


# ---------------------------------------------------------------- the property

_ROOT_MESSAGE = re.compile(r"^(a SidecarSet must be a mapping|document is a|SidecarSet items must be|YAML)")


def check_error(exc, allowed, target):
    """``exc`` is one of ``allowed`` and says where; anything else fails with the foreign traceback."""
    name = type(exc).__name__
    STATS["errors"].setdefault(target, {}).setdefault(name, 0)
    STATS["errors"][target][name] += 1
    if not isinstance(exc, allowed):
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        where = "%s %s:%d %s" % (name, os.path.basename(frame.filename), frame.lineno, frame.name)
        STATS["foreign"].setdefault(where, str(exc)[:200])
        if COLLECT:
            return
        raise AssertionError("foreign exception %s from %s: %s\n%s" % (
            name, target, str(exc)[:300], "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-3000:]))
    problem = placeless(exc)
    if problem:
        STATS["placeless"].setdefault(problem[:120], str(exc)[:200])
        if not COLLECT:
            raise AssertionError(problem)


def placeless(exc):
    """Why ``exc`` (one of ours) does not say where the problem is, or ``""``."""
    text = str(exc)
    if not text:
        return "empty message: %r" % (exc,)
    if isinstance(exc, SidecarSetError):
        if not exc.errors:
            return "SidecarSetError without errors: %s" % text
        for path, message in exc.errors:
            if not (path or exc.source or _ROOT_MESSAGE.match(message)):
                return "SidecarSetError without a field path or a file: %s" % message
    elif not (exc.field or exc.line is not None):
        return "ManifestError without a field or a line: %s" % exc.message
    return ""


def count(target, started, documents=1):
    now = time.monotonic()
    STATS["documents"][target] = STATS["documents"].get(target, 0) + documents
    STATS["seconds"][target] = STATS["seconds"].get(target, 0.0) + (now - started)
    STATS["wall"].setdefault(target, [started, now])[1] = now


@fuzz_settings("sidecarset_dict")
@given(data=st.data())
def test_fuzz_sidecarset_dicts(data):
    """Mutated SidecarSet mappings (as Ansible passes them): 1 to 3 through ``load_sidecarsets`` at once (duplicate
    names included), or each through ``normalize_sidecarset``."""
    seeds = data.draw(st.lists(st.sampled_from(SIDECARSET_SEEDS), min_size=1, max_size=3), label="seeds")
    docs = [mutate(data, seed) for seed in seeds]
    together = data.draw(st.booleans(), label="through load_sidecarsets")
    for doc in [docs] if together else docs:
        started = time.monotonic()
        loaded = 1  # load_sidecarsets stops at the first invalid document: count the others only when it did not
        try:
            if together:
                load_sidecarsets(doc)
                loaded = len(doc)
            else:
                normalize_sidecarset(doc, source="fuzz.yaml")
        except Exception as exc:  # pylint: disable=broad-except
            check_error(exc, SidecarSetError, "sidecarset_dict")
        finally:
            count("sidecarset_dict", started, loaded)


@fuzz_settings("sidecarset_yaml")
@given(data=st.data())
def test_fuzz_sidecarset_yaml(data, tmp_path_factory):
    """Mutated SidecarSets as (damaged) YAML text, from a file through ``load_sidecarsets``."""
    seeds = data.draw(st.lists(st.sampled_from(SIDECARSET_SEEDS), min_size=1, max_size=3), label="seeds")
    text = "---\n".join(yaml_text(data, mutate(data, seed, small_replacements)) for seed in seeds)
    started = time.monotonic()
    try:
        if data.draw(st.booleans(), label="from a file"):
            path = os.path.join(str(tmp_path_factory.getbasetemp()), "fuzz-sidecarset.yaml")
            with open(path, "w", encoding="utf-8", errors="surrogatepass") as handle:
                handle.write(text)
            load_sidecarsets([path])
        else:
            for raw in parse_sidecarset_yaml(text, source="fuzz.yaml"):
                normalize_sidecarset(raw, source="fuzz.yaml")
    except Exception as exc:  # pylint: disable=broad-except
        check_error(exc, SidecarSetError, "sidecarset_yaml")
    finally:
        count("sidecarset_yaml", started, len(seeds))


@fuzz_settings("manifest_yaml")
@given(data=st.data())
def test_fuzz_manifest_yaml(data):
    """Mutated manifests as (damaged) YAML text through ``iter_documents``, then ``inject_manifest``."""
    seeds = data.draw(st.lists(st.sampled_from(MANIFEST_SEEDS), min_size=1, max_size=3), label="seeds")
    text = "---\n".join(yaml_text(data, mutate(data, seed, small_replacements)) for seed in seeds)
    started = time.monotonic()
    try:
        for doc in iter_documents(text, source="fuzz.yaml"):
            inject_manifest(doc, VALID_SIDECARSETS)
    except Exception as exc:  # pylint: disable=broad-except
        check_error(exc, (ManifestError, SidecarSetError), "manifest_yaml")
    finally:
        count("manifest_yaml", started, len(seeds))


@fuzz_settings("manifest_inject")
@given(data=st.data())
def test_fuzz_manifest_injection(data):
    """Mutated manifest documents (1 to 3 mappings) through ``inject_manifest`` with the example SidecarSets."""
    seeds = data.draw(st.lists(st.sampled_from(MANIFEST_SEEDS), min_size=1, max_size=3), label="seeds")
    docs = [mutate(data, seed) for seed in seeds]
    labels = data.draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["default", "shop", "jobs"]), values, max_size=2)))
    for doc in docs:
        started = time.monotonic()
        try:
            inject_manifest(doc, VALID_SIDECARSETS, namespace_labels=labels)
        except Exception as exc:  # pylint: disable=broad-except
            check_error(exc, (ManifestError, SidecarSetError), "manifest_inject")
        finally:
            count("manifest_inject", started)


# ---------------------------------------------------------------- what the fuzz found, as plain regressions

BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    "a%d: &a%d [%s]\n" % (i, i, ", ".join(["*a%d" % (i - 1)] * 10)) for i in range(1, 10))


def test_alias_bomb_is_refused_quickly():
    """10**10 values when expanded: refused after 10**6, with the path (before, copying it never ended)."""
    started = time.monotonic()
    with pytest.raises(SidecarSetError, match=r"a\d+\[\d\].*more than 1000000 values in one document"):
        parse_sidecarset_yaml("kind: SidecarSet\napiVersion: apps.kruise.io/v1beta1\n" + BOMB, source="bomb.yaml")
    with pytest.raises(ManifestError, match="more than 1000000 values") as info:
        list(iter_documents("kind: ConfigMap\n" + BOMB, source="bomb.yaml"))
    assert info.value.line == 1 and info.value.field.startswith("a")
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("text", ["kind: SidecarSet\nspec: &s {x: *s}\n", "kind: SidecarSet\nspec: &l [*l]\n",
                                  "kind: SidecarSet\nspec: " + "[" * 3000 + "]" * 3000 + "\n"])
def test_self_containing_or_deep_yaml_is_refused(text):
    """Before: RecursionError (a YAML alias can make a value contain itself)."""
    with pytest.raises(SidecarSetError, match=r"spec.*nested deeper than 100 levels"):
        parse_sidecarset_yaml(text, source="deep.yaml")
    with pytest.raises(ManifestError, match="nested deeper than 100 levels"):
        list(iter_documents(text, source="deep.yaml"))


def test_deep_mapping_is_refused_with_its_path():
    doc = clone(VALID_SIDECARSETS[0])
    doc["spec"]["containers"][0]["env"] = [{"name": "X", "value": nested(3000, "v", False)}]
    with pytest.raises(SidecarSetError, match=r"spec\.containers\[0\]\.env\[0\]\.value\.a\.a.*: nested deeper"):
        normalize_sidecarset(doc)


@pytest.mark.parametrize("text,line", [("kind: SidecarSet\nspec: \x00\n", 2), ("kind: SidecarSet\n\nspec: \ud800\n", 3)])
def test_unmarked_yaml_errors_name_the_line(text, line):
    """A character YAML does not allow, or a lone surrogate (before: UnicodeEncodeError), names its line."""
    with pytest.raises(SidecarSetError, match="YAML error at line %d" % line):
        parse_sidecarset_yaml(text, source="bad.yaml")
    with pytest.raises(ManifestError) as info:
        list(iter_documents(text, source="bad.yaml"))
    assert info.value.line == line


@pytest.mark.parametrize("value", ["!!float a", "!!float ''", "!!int x"])
def test_explicit_tags_pyyaml_cannot_construct(value):
    """Before: PyYAML's ValueError/IndexError came out of the loaders."""
    text = "kind: SidecarSet\nspec:\n  x: %s\n" % value
    with pytest.raises(SidecarSetError, match="YAML error in the document at line 1: cannot construct a value"):
        parse_sidecarset_yaml(text, source="tag.yaml")
    with pytest.raises(ManifestError, match="cannot construct a value") as info:
        list(iter_documents(text, source="tag.yaml"))
    assert info.value.line == 1


@pytest.mark.parametrize("change,path", [
    (lambda d: d["spec"].update(selector=True), "spec.selector"),  # before: AttributeError in is_empty_selector
    (lambda d: d["spec"]["containers"][0].setdefault("volumeMounts", []).append({"name": ["x"], "mountPath": ["/a"]}),
     "spec.containers[0].volumeMounts[0].mountPath"),  # before: TypeError (unhashable list)
    (lambda d: d["spec"]["containers"][0].update(volumeMounts=True), "spec.containers[0].volumeMounts"),  # TypeError
    (lambda d: d.update({False: 1}), "False"),  # before: an error without a path
])
def test_wrong_types_in_a_sidecarset_name_the_field(change, path):
    doc = clone(VALID_SIDECARSETS[0])
    change(doc)
    with pytest.raises(SidecarSetError) as info:
        normalize_sidecarset(doc)
    assert path in [p for p, unused_message in info.value.errors]


DEPLOYMENT = [d for d in MANIFEST_SEEDS if d.get("kind") == "Deployment"][0]


@pytest.mark.parametrize("change,field", [
    (lambda d: d.update(kind=["Deployment"]), "kind"),  # before: TypeError in kinds.kind_info
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(name=["x"]), "spec.template.spec.containers[0].name"),
    (lambda d: d["spec"]["template"]["spec"].update(containers={"a": 1}), "spec.template.spec.containers"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(env=True), "spec.template.spec.containers[0].env"),
    (lambda d: d["spec"]["template"]["metadata"]["labels"].update(app=1), "spec.template.metadata.labels.app"),
    (lambda d: d["spec"]["template"]["metadata"].update(annotations={"kruise.io/sidecarset-hash": "{no"}),
     "spec.template.metadata.annotations"),  # before: an AnnotationError (ValueError)
    (lambda d: d.update(metadata={"namespace": 7}), "metadata.namespace"),
])
def test_wrong_types_in_a_manifest_name_the_field(change, field):
    doc = clone(DEPLOYMENT)
    change(doc)
    with pytest.raises(ManifestError) as info:
        inject_manifest(doc, VALID_SIDECARSETS)
    assert info.value.field == field


def test_render_names_the_file_of_a_bad_template():
    from ansible_collections.meshops.sidecarset.plugins.module_utils.offline import render  # pylint: disable=import-outside-toplevel
    doc = clone(DEPLOYMENT)
    doc["spec"]["template"]["spec"]["containers"] = "nginx"
    with pytest.raises(ManifestError, match=r"^manifest \(app\.yaml, document\[0\]\): spec\.template\.spec\.containers: must be a list$"):
        render([("app.yaml", "app.yaml", yaml.safe_dump(doc))], VALID_SIDECARSETS)


def test_fuzz_figures(tmp_path_factory, capsys):
    """At least 10,000 generated documents, 0 foreign exceptions; the figures are printed and written to JSON."""
    ran = sorted(STATS["documents"])
    if ran != sorted(EXAMPLES):
        pytest.skip("only %s of the fuzz targets ran in this process" % ", ".join(ran or ["none"]))
    total = sum(STATS["documents"].values())
    seconds = round(sum(STATS["seconds"].values()), 2)
    wall = round(sum(end - start for start, end in STATS["wall"].values()), 2)
    figures = {
        "documents": total,
        "seconds": wall,
        "seconds_in_loaders": seconds,
        "per_target": {t: {"documents": STATS["documents"][t], "seconds": round(STATS["wall"][t][1] - STATS["wall"][t][0], 2),
                           "seconds_in_loaders": round(STATS["seconds"][t], 2), "errors": STATS["errors"].get(t, {})}
                       for t in ran},
        "foreign_exceptions": STATS["foreign"],
        "errors_without_a_place": STATS["placeless"],
    }
    path = os.path.join(str(tmp_path_factory.getbasetemp()), "loader-fuzz.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(figures, handle, indent=2, sort_keys=True)
    with capsys.disabled():
        print("\nloader fuzz: %d documents in %.1f s (%.1f s in the loaders), %d foreign exceptions (%s)"
              % (total, wall, seconds, len(STATS["foreign"]), path))
        for where, message in sorted(STATS["foreign"].items()):
            print("  foreign: %s: %s" % (where, message))
        for problem, message in sorted(STATS["placeless"].items()):
            print("  placeless: %s  <-  %s" % (problem, message))
    assert not STATS["foreign"] and not STATS["placeless"], figures
    assert total >= MINIMUM, figures
