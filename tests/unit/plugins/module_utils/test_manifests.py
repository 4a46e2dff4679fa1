# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifest documents: template paths, multi-document parsing, offline injection, YAML output."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os

import pytest
import yaml

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import ManifestError, SidecarSetError
from ansible_collections.meshops.sidecarset.plugins.module_utils.manifests import (
    dump_documents,
    inject_manifest,
    iter_documents,
    pod_template_path,
)
from ansible_collections.meshops.sidecarset.plugins.module_utils.sidecarset import load_sidecarsets

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
EXAMPLES = os.path.join(ROOT, "examples")
FIXTURES = os.path.join(ROOT, "tests", "unit", "fixtures")
NOW = "2026-03-01T12:00:00Z"


def read(path):
    with open(path) as handle:
        return handle.read()


@pytest.fixture(scope="module")
def sets():
    return load_sidecarsets([os.path.join(EXAMPLES, "sidecarsets")])


@pytest.mark.parametrize("kind,path", [
    ("Deployment", ("spec", "template")), ("StatefulSet", ("spec", "template")), ("DaemonSet", ("spec", "template")),
    ("ReplicaSet", ("spec", "template")), ("Job", ("spec", "template")),
    ("CronJob", ("spec", "jobTemplate", "spec", "template")), ("Pod", ()), ("ConfigMap", None), ("Service", None),
])
def test_pod_template_path(kind, path):
    assert pod_template_path(kind) == path


def test_iter_documents_skips_empty_and_expands_lists():
    docs = list(iter_documents(read(os.path.join(FIXTURES, "workloads.yaml")), "workloads.yaml"))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("ConfigMap", "settings"), ("CronJob", "nightly"), ("Pod", "lonely"), ("StatefulSet", "db")]


def test_iter_documents_syntax_error_names_file_document_and_line():
    path = os.path.join(FIXTURES, "bad-manifest.yaml")
    with pytest.raises(ManifestError) as info:
        list(iter_documents(read(path), path))
    err = info.value
    assert err.source == path and err.document == 1 and err.line == 11
    assert str(err) == ("manifest (%s, document[1], line 11): YAML syntax error at column 1: did not find expected "
                        "',' or ']' (while parsing a flow sequence at line 10, column 11)" % path)


@pytest.mark.parametrize("text,field,fragment", [
    ("- a\n- b\n", None, "document must be a mapping"),
    ("metadata: {name: x}\n", "kind", "kind is required"),
    ("kind: List\nitems:\n  - kind: Pod\n  - 3\n", "items[1]", "document must be a mapping"),
])
def test_iter_documents_rejects_non_objects(text, field, fragment):
    with pytest.raises(ManifestError) as info:
        list(iter_documents(text, "x.yaml"))
    assert info.value.field == field and fragment in str(info.value) and "x.yaml, document[0], line 1" in str(info.value)


def test_inject_deployment_then_unchanged(sets):
    doc = next(iter_documents(read(os.path.join(EXAMPLES, "manifests", "test-app.yaml")), "test-app.yaml"))
    before = copy.deepcopy(doc)
    new_doc, status, reason = inject_manifest(doc, sets, now=NOW)
    assert doc == before
    assert (status, reason) == ("injected", "injected SidecarSet(s) mosn")
    containers = new_doc["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["mosn-1", "mosn-2", "test-app"]
    assert new_doc["spec"]["selector"] == doc["spec"]["selector"] and new_doc["metadata"] == doc["metadata"]
    again, status, reason = inject_manifest(new_doc, sets, now="2027-01-01T00:00:00Z")
    assert (status, reason) == ("unchanged", "already up to date with SidecarSet(s) mosn")
    assert again == new_doc


def test_namespace_labels_mapping(sets):
    doc = next(iter_documents(read(os.path.join(EXAMPLES, "manifests", "test-app.yaml")), "t.yaml"))
    doc["metadata"]["namespace"] = "shop"
    unused_doc, status, reason = inject_manifest(doc, sets, now=NOW)
    assert status == "skipped"
    assert reason == "no SidecarSet matches labels {app: test-app, mesh.apsara-edge.com/mosn-injected: true} in namespace shop"
    # The API server always sets kubernetes.io/metadata.name to the namespace's own name, so a mapping cannot
    # make "shop" look like "default" offline either; other labels of the mapping do count.
    unused_doc, status, unused_reason = inject_manifest(
        doc, sets, namespace_labels={"shop": {"kubernetes.io/metadata.name": "default"}}, now=NOW)
    assert status == "skipped"
    doc["metadata"]["namespace"] = "default"
    unused_doc, status, unused_reason = inject_manifest(doc, sets, namespace_labels={"shop": {"x": "y"}}, now=NOW)
    assert status == "injected"


def test_kinds_without_template_and_cronjob_and_pod(sets):
    docs = list(iter_documents(read(os.path.join(FIXTURES, "workloads.yaml")), "workloads.yaml"))
    results = [inject_manifest(d, sets, now=NOW) for d in docs]
    assert [r[1] for r in results] == ["skipped", "injected", "injected", "skipped"]
    assert results[0][2] == "kind ConfigMap has no pod template"
    cron = results[1][0]["spec"]["jobTemplate"]["spec"]["template"]
    assert [c["name"] for c in cron["spec"]["containers"]] == ["sidecar-1", "sidecar-2", "job"]
    assert docs[1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["name"] == "job"
    pod = results[2][0]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["sidecar-1", "sidecar-2", "main"]
    assert pod["metadata"]["annotations"]["kruise.io/sidecarset-injected-list"] == "hotupgrade-sidecarset"
    assert results[3][2].startswith("no SidecarSet matches labels {app: db}")


def test_dump_documents_round_trip_block_style_and_order(sets):
    docs = list(iter_documents(read(os.path.join(FIXTURES, "workloads.yaml")), "workloads.yaml"))
    injected = [inject_manifest(d, sets, now=NOW)[0] for d in docs]
    text = dump_documents(injected)
    assert text.count("\n---\n") == 3 and "&id" not in text and "{" not in text.split("annotations:", maxsplit=1)[0]
    assert text.startswith("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n")
    assert list(yaml.safe_load_all(text)) == injected
    assert list(iter_documents(text, "out.yaml")) == injected


def test_dump_documents_handles_shared_objects_and_str_subclasses():
    class Unsafe(str):
        pass

    shared = {"k": Unsafe("v")}
    text = dump_documents([{"a": shared, "b": shared}])
    assert text == "a:\n  k: v\nb:\n  k: v\n"


def test_one_yaml_reader_for_sidecarsets_and_manifests():
    """``sidecarset.read_yaml`` is the loader loop of both; each words its ``YamlProblem`` with file, document, line."""
    from ansible_collections.meshops.sidecarset.plugins.module_utils import sidecarset as ss  # pylint: disable=import-outside-toplevel
    text = "kind: ConfigMap\n---\n---\nkind: [unclosed\n"
    documents = ss.read_yaml(text)
    assert next(documents) == (0, 1, {"kind": "ConfigMap"})
    assert next(documents)[::2] == (1, None)          # an empty document: skipped by both readers
    with pytest.raises(ss.YamlProblem) as problem:
        next(documents)
    assert (problem.value.what, problem.value.document) == ("syntax", 2)
    with pytest.raises(ManifestError) as manifest_error:
        list(iter_documents(text, "m.yaml"))
    with pytest.raises(SidecarSetError) as sidecarset_error:
        ss.yaml_documents(text, "s.yaml")
    assert "m.yaml, document[2], line 5" in str(manifest_error.value)
    assert "s.yaml" in str(sidecarset_error.value) and "document[2]" in str(sidecarset_error.value)
    assert "YAML syntax error at line 5" in str(sidecarset_error.value)
